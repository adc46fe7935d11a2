"""A Compose service's containers on one Docker host, found by label (never by memory), made as Compose v2
makes them: named `<project>-<service>-<number>`, labelled `com.docker.compose.project`, `.service`,
`.container-number`, `.config-hash`, `.oneoff`, on the project's networks with the service's name as
alias, so `docker compose ps` on the host shows them as the project's.

A container's **configuration** is what it is made from (image, command, environment, labels, health
check, networks, restart policy, …) as one JSON mapping; its SHA-256 is the config hash, so "the new
version's containers" are those whose hash is the wanted one, whatever attempt made them. Each container
we make carries its configuration and the one it replaced in labels, so an undo puts back the previous
configuration exactly; a container Compose made is read back into the same form from its inspection."""

from __future__ import annotations

import hashlib
import json
import shlex
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from temporalio.exceptions import ApplicationError

from activities.docker import invalid
from activities.secrets import reveal
from models.compose import ComposeHostTarget, seconds

PROJECT, SERVICE, NUMBER, HASH, ONEOFF = (f"com.docker.compose.{n}" for n in
                                          ("project", "service", "container-number", "config-hash", "oneoff"))
CONFIG, PREVIOUS, ROLLOUT, REVISION = (f"dev.durable-rollouts.{n}" for n in ("config", "previous", "rollout", "revision"))
CONFIG_KEYS = frozenset({"image", "command", "entrypoint", "environment", "labels", "healthcheck", "networks", "restart",
                         "stop_signal", "stop_timeout", "user", "working_dir", "read_only", "init"})
_OURS = (PROJECT, SERVICE, NUMBER, HASH, ONEOFF, CONFIG, PREVIOUS, ROLLOUT, REVISION, "com.docker.compose.")


def where(t: ComposeHostTarget) -> str:
    return t.describe()


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def network_name(t: ComposeHostTarget, key: str) -> str:
    """A project network's engine name: its `name:`, an external one's key, or `<project>_<key>` (Compose's
    rules)."""
    block = (t.compose.get("networks") or {}).get(key) or {}
    return block.get("name") or (key if block.get("external") else f"{t.project}_{key}")


def wanted(t: ComposeHostTarget, image: str, restarted_at: str = "") -> dict[str, Any]:
    """The configuration the Compose file gives the rolled service's containers, running `image`."""
    block = t.rolled()

    def words(value: Any) -> list[str] | None:
        return None if value is None else shlex.split(value) if isinstance(value, str) else [str(v) for v in value]

    environment = block.get("environment") or {}
    if isinstance(environment, dict):
        environment = [f"{k}={'' if v is None else v}" for k, v in environment.items()]
    environment = [literal(item) for item in environment]
    labels = block.get("labels") or {}
    if isinstance(labels, list):
        labels = dict(item.split("=", 1) if "=" in item else (item, "") for item in labels)
    labels = {k: literal(str(v)) for k, v in labels.items()}
    networks = block.get("networks") or {"default": None}
    if isinstance(networks, list):
        networks = {name: None for name in networks}
    health = block.get("healthcheck")
    config: dict[str, Any] = {
        "image": image, "command": words(block.get("command")), "entrypoint": words(block.get("entrypoint")),
        "environment": sorted(environment), "labels": labels,
        "healthcheck": _health(health) if health else None,
        "networks": {network_name(t, key): sorted({t.service, *((value or {}).get("aliases") or [])})
                     for key, value in networks.items()},
        "restart": block.get("restart", "no"), "stop_signal": block.get("stop_signal"),
        "stop_timeout": int(seconds(block["stop_grace_period"])) if "stop_grace_period" in block else None,
        "user": block.get("user"), "working_dir": block.get("working_dir"),
        "read_only": bool(block.get("read_only", False)), "init": block.get("init")}
    if restarted_at:
        config["labels"]["dev.durable-rollouts.restarted-at"] = restarted_at
    return config


def literal(value: str) -> str:
    """A Compose string as the container gets it: `$$` is a literal `$` (variables are refused before)."""
    return value.replace("$$", "$")


def _health(health: dict[str, Any]) -> dict[str, Any]:
    if health.get("disable"):
        return {"Test": ["NONE"]}
    test = health.get("test")
    test = ["CMD-SHELL", test] if isinstance(test, str) else test
    found = {"Test": test}
    for key, field in (("interval", "Interval"), ("timeout", "Timeout"), ("start_period", "StartPeriod")):
        if key in health:
            found[field] = int(seconds(health[key]) * 1e9)
    if "retries" in health:
        found["Retries"] = int(health["retries"])
    return found


@dataclass
class Container:
    """One container of the service, from its inspection."""

    attrs: dict[str, Any]

    @property
    def id(self) -> str:
        return self.attrs["Id"]

    @property
    def name(self) -> str:
        return self.attrs["Name"].lstrip("/")

    @property
    def labels(self) -> dict[str, str]:
        return self.attrs["Config"].get("Labels") or {}

    @property
    def number(self) -> int:
        return int(self.labels.get(NUMBER, "0") or 0)

    @property
    def revision(self) -> int:
        return int(self.labels.get(REVISION, "0") or 0)

    @property
    def hash(self) -> str:
        return self.labels.get(HASH, "")

    @property
    def image(self) -> str:
        return self.attrs["Config"]["Image"]

    @property
    def running(self) -> bool:
        return bool(self.attrs["State"].get("Running"))

    @property
    def health(self) -> str:
        """healthy, unhealthy, starting; "none" without a health check."""
        return (self.attrs["State"].get("Health") or {}).get("Status", "none")

    def ready(self, after_seconds: int) -> bool:
        if not self.running:
            return False
        if self.health != "none":
            return self.health == "healthy"
        started = datetime.fromisoformat(self.attrs["State"]["StartedAt"][:26].rstrip("Z") + "+00:00")
        return time.time() - started.timestamp() >= after_seconds

    def config(self) -> dict[str, Any]:
        """The configuration it was made from: its label (ours), or read back from its inspection (Compose's)."""
        if CONFIG in self.labels:
            return read_label(self, CONFIG)
        c, host = self.attrs["Config"], self.attrs["HostConfig"]
        policy = host.get("RestartPolicy") or {}
        restart = policy.get("Name") or "no"
        if restart == "on-failure" and policy.get("MaximumRetryCount"):
            restart = f"on-failure:{policy['MaximumRetryCount']}"
        networks = (self.attrs.get("NetworkSettings") or {}).get("Networks") or {}
        return {
            "image": c["Image"], "command": c.get("Cmd"), "entrypoint": c.get("Entrypoint"),
            "environment": sorted(c.get("Env") or []),
            "labels": {k: v for k, v in (c.get("Labels") or {}).items() if not k.startswith(_OURS)},
            "healthcheck": c.get("Healthcheck"),
            "networks": {name: sorted(a for a in (n.get("Aliases") or []) if a not in (self.name, self.id[:12]))
                         for name, n in networks.items()},
            "restart": restart, "stop_signal": c.get("StopSignal"), "stop_timeout": c.get("StopTimeout"),
            "user": c.get("User") or None, "working_dir": c.get("WorkingDir") or None,
            "read_only": bool(host.get("ReadonlyRootfs")), "init": host.get("Init")}


def read_label(container: Container, label: str) -> dict[str, Any]:
    """A configuration the engine recorded on a container (its own, or the one it replaced), checked for
    shape: anyone who can label a container on the host could have written it."""
    try:
        found = json.loads(container.labels[label])
    except ValueError:
        found = None
    if not isinstance(found, dict) or set(found) != CONFIG_KEYS or not isinstance(found.get("image"), str) \
            or not isinstance(found.get("networks"), dict) or not isinstance(found.get("environment"), list):
        raise invalid(f"{container.name}: its label {label} is not a configuration this engine wrote")
    if label == CONFIG and config_hash(found) != container.hash:
        raise invalid(f"{container.name}: its label {label} does not match its config hash")
    return found


def service_containers(client: Any, t: ComposeHostTarget) -> list[Container]:
    """Every container of the service (running or not, one-off runs aside), inspected, by number."""
    filters = {"label": [f"{PROJECT}={t.project}", f"{SERVICE}={t.service}", f"{ONEOFF}=False"]}
    found = []
    for summary in client.api.containers(all=True, filters=filters):
        try:
            found.append(Container(client.api.inspect_container(summary["Id"])))
        except Exception as error:  # noqa: BLE001 - removed between the list and the inspection
            if getattr(error, "status_code", None) != 404:
                raise
    return sorted(found, key=lambda c: c.number)


def create(client: Any, t: ComposeHostTarget, config: dict[str, Any], number: int, rollout_id: str,
           previous: dict[str, Any] | None, revision: int) -> str:
    """Make and start container `number` from `config` (its networks made first if missing); its ID."""
    name = f"{t.project}-{t.service}-{number}"
    ensure_image(client, config["image"])
    for network in config["networks"]:
        ensure_network(client, t, network)
    labels = {**{k: v for k, v in config["labels"].items() if not k.startswith(_OURS)}, PROJECT: t.project,
              SERVICE: t.service, NUMBER: str(number), HASH: config_hash(config), ONEOFF: "False",
              CONFIG: json.dumps(config, sort_keys=True), ROLLOUT: rollout_id, REVISION: str(revision),
              PREVIOUS: json.dumps(previous, sort_keys=True) if previous is not None else "null"}
    restart, _, retries = config["restart"].partition(":")
    host_config = client.api.create_host_config(
        restart_policy={"Name": "" if restart == "no" else restart, "MaximumRetryCount": int(retries or 0)},
        read_only=config["read_only"], init=config["init"])
    first, *others = list(config["networks"])
    networking = client.api.create_networking_config(
        {first: client.api.create_endpoint_config(aliases=[*config["networks"][first], name])})
    created = client.api.create_container(
        config["image"], command=config["command"], entrypoint=config["entrypoint"],
        environment=[reveal(item) for item in config["environment"]],  # {{secrets.NAME}}: filled in only here
        labels=labels, name=name, host_config=host_config, networking_config=networking,
        healthcheck=config["healthcheck"], stop_signal=config["stop_signal"], user=config["user"],
        working_dir=config["working_dir"], stop_timeout=config["stop_timeout"])
    start(client, Container(client.api.inspect_container(created["Id"])), config)
    return created["Id"]


def start(client: Any, container: Container, config: dict[str, Any]) -> None:
    """Connect the networks it is not on yet (a container made by a killed attempt may lack them), start it."""
    joined = (container.attrs.get("NetworkSettings") or {}).get("Networks") or {}
    for network, aliases in config["networks"].items():
        if network not in joined:
            client.api.connect_container_to_network(container.id, network, aliases=[*aliases, container.name])
    client.api.start(container.id)


def ensure_image(client: Any, image: str) -> None:
    """The image on the host: pulled (by tag or digest) when it is not there yet."""
    try:
        client.api.inspect_image(image)
        return
    except Exception as error:  # noqa: BLE001 - not there: pull it
        if getattr(error, "status_code", None) != 404:
            raise
    repository, _, digest = image.partition("@")
    name, tag = (repository, digest) if digest else _split_tag(image)
    for line in client.api.pull(name, tag=tag, stream=True, decode=True):
        if "error" in line:  # the engine reports a failed pull inside the stream: a retry may get it
            raise ApplicationError(f"pull {image}: {line['error']}", type="DockerUnavailable")


def _split_tag(image: str) -> tuple[str, str]:
    name, _, tag = image.rpartition(":")
    return (name, tag) if name and "/" not in tag else (image, "latest")


def ensure_network(client: Any, t: ComposeHostTarget, network: str) -> None:
    """The project's network, made as Compose makes it (driver, internal, its labels) when missing; an
    `external` one must exist already."""
    if any(n["Name"] == network for n in client.api.networks(names=[network])):
        return
    key = next((k for k in (t.compose.get("networks") or {"default": None}) if network_name(t, k) == network), "default")
    block = (t.compose.get("networks") or {}).get(key) or {}
    if block.get("external"):
        raise invalid(f"{where(t)}: the external network {network} does not exist on the host")
    client.api.create_network(network, driver=block.get("driver", "bridge"), internal=bool(block.get("internal")),
                              check_duplicate=True, labels={PROJECT: t.project, "com.docker.compose.network": key})


def remove(client: Any, t: ComposeHostTarget, container: Container, proxy: Any = None) -> None:
    """Drain (out of the proxy's backend, then the pre-stop hook if the container runs), stop within its
    grace period, remove."""
    for backend in (t.proxy.backends() if proxy is not None else []):
        proxy.unserve(backend, container.name, t.pre_stop_timeout_seconds)
    if container.running and t.pre_stop:
        _pre_stop(client, t, container)
    timeout = container.attrs["Config"].get("StopTimeout")
    try:
        if container.running:
            client.api.stop(container.id, timeout=10 if timeout is None else timeout)
        client.api.remove_container(container.id, force=True, v=True)  # its anonymous volumes too
    except Exception as error:  # noqa: BLE001 - gone already (a retry, or someone else)
        if getattr(error, "status_code", None) not in (404, 409):
            raise


def _pre_stop(client: Any, t: ComposeHostTarget, container: Container) -> None:
    """The hook inside the container, detached and polled until it ends or pre_stop_timeout_seconds pass (the
    Engine API has no exec timeout: a hook still running then is left to the stop's signal)."""
    exec_id = client.api.exec_create(container.id, t.pre_stop)["Id"]
    client.api.exec_start(exec_id, detach=True)
    deadline = time.monotonic() + t.pre_stop_timeout_seconds
    while client.api.exec_inspect(exec_id).get("Running") and time.monotonic() < deadline:
        time.sleep(0.2)
