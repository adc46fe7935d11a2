"""What the Compose-host tests share: the document, and the service's containers as the engine has them."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-8f2e41"  # the workers' ROLLOUT_SECRET_SHOP_TOKEN (tests/compose/conftest.py)


def compose_document(name: str, project: str, image: str, replicas: int = 3, strategy: dict | None = None,
                     deadline: int = 60, **target: Any) -> dict[str, Any]:
    """A Rollout of service `web` of `project` on host web-1: a rolling update (maxSurge 1, maxUnavailable 0)."""
    service = {"image": image, "deploy": {"replicas": replicas}}
    return {"apiVersion": "rollouts.durable.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": name, "environment": "test"},
            "spec": {"target": {"composeHost": {"host": "web-1", "project": project, "service": "web",
                                                "compose": {"services": {"web": service}}, **target}},
                     "image": image, "progressDeadlineSeconds": deadline,
                     "strategy": strategy or {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}}


def hosts_file(path: Path, *hosts, projects: list[str], runtime: str = "") -> Path:
    """A worker's Docker hosts file naming `hosts` (web-1, web-2, … in order), each letting documents roll
    `projects` and weight the backends the tests use (web, web-preview); `runtime`: another address of the
    first host's proxy (a logging relay)."""
    path.write_text(yaml.safe_dump({"hosts": {f"web-{i}": {
        "engine": h.engine, "projects": projects,
        **({"haproxy": (runtime if i == 1 and runtime else h.runtime), "backends": ["web", "web-preview"]}
           if h.runtime else {})} for i, h in enumerate(hosts, 1)}}))
    return path


def hosts_env(folder: Path, *hosts, projects: list[str]) -> dict[str, str]:
    """A worker's environment naming `hosts` in its Docker hosts file (`hosts_file`)."""
    return {"ROLLOUT_DOCKER_HOSTS": str(hosts_file(folder / "docker-hosts.yaml", *hosts, projects=projects))}


def containers(host, project: str) -> list[dict[str, Any]]:
    """The service's containers (all states), inspected, by container number."""
    client = host.client()
    try:
        found = [client.api.inspect_container(c["Id"]) for c in client.api.containers(
            all=True, filters={"label": [f"com.docker.compose.project={project}", "com.docker.compose.service=web"]})]
    finally:
        client.close()
    return sorted(found, key=lambda c: int(c["Config"]["Labels"]["com.docker.compose.container-number"]))


class Events:
    """The engine's events for one project, collected from before the rollout starts."""

    def __init__(self, host, project: str) -> None:
        self.client = host.client()
        self.stream = self.client.api.events(decode=True, filters={
            "type": "container", "label": [f"com.docker.compose.project={project}"]})
        self.seen: list[tuple[str, str, str]] = []  # (action, container name, image)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for event in self.stream:
                attributes = event.get("Actor", {}).get("Attributes", {})
                self.seen.append((event.get("Action", ""), attributes.get("name", ""), attributes.get("image", "")))
        except Exception:  # noqa: BLE001 - closed at the end
            pass

    def close(self) -> list[tuple[str, str, str]]:
        self.stream.close()
        self.client.close()
        return list(self.seen)


def replay(events: list[tuple[str, str, str]], ready: set[str]) -> tuple[int, int]:
    """The most containers that existed at once and the fewest healthy ones while one was being stopped."""
    existing, most, fewest = set(ready), len(ready), len(ready)
    for action, name, _ in events:
        if action == "create":
            existing.add(name)
            most = max(most, len(existing))
        elif action == "health_status: healthy":
            ready.add(name)
        elif action in ("kill", "die"):
            ready.discard(name)
            fewest = min(fewest, len(ready))
        elif action == "destroy":
            existing.discard(name)
    return most, fewest
