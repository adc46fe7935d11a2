"""What the Compose-host tests share: the document, and the service's containers as the engine has them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


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


def containers(host, project: str) -> list[dict[str, Any]]:
    """The service's containers (all states), inspected, by container number."""
    client = host.client()
    try:
        found = [client.api.inspect_container(c["Id"]) for c in client.api.containers(
            all=True, filters={"label": [f"com.docker.compose.project={project}", "com.docker.compose.service=web"]})]
    finally:
        client.close()
    return sorted(found, key=lambda c: int(c["Config"]["Labels"]["com.docker.compose.container-number"]))
