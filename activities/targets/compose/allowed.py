"""What a document may touch on a Docker host: the host's entry in the worker's hosts file says which Compose
projects documents may roll there (`projects`), which HAProxy backends they may weight (`backends`) and
which other networks their containers may join (`networks`); `"*"` allows any. A document naming
another team's project, pointing its proxy at another service's backend, or joining a network it names
itself (`name:`, `external`) that the entry does not list is refused before the engine or the proxy is
asked to change anything; a project network (`<project>_<key>`, as Compose names it) that exists must be
that project's and key's (its Compose labels). The backends and networks an entry lists are open to every
project it lists: give teams' projects entries of their own (two names may point at one engine).

    hosts:
      web-1: {engine: "unix:///var/run/docker.sock", haproxy: "unix:///run/haproxy/admin.sock",
              projects: [shop], backends: [shop_web, shop_web_preview], networks: [edge]}
"""

from __future__ import annotations

from typing import Any

from activities.docker import HOSTS_ENV, DockerHosts, docker_errors, invalid
from models.compose import ComposeHostTarget

PROJECT_LABEL = "com.docker.compose.project"
NETWORK_LABEL = "com.docker.compose.network"


def _listed(allowed: list[str] | None, name: str) -> bool:
    return bool(allowed) and ("*" in allowed or name in allowed)


def engine_for(hosts: DockerHosts, t: ComposeHostTarget) -> Any:
    """The host's engine, once its entry lets documents roll the target's project and join its networks."""
    client = hosts.client(t.host)
    entry = hosts.hosts()[t.host]
    if not _listed(entry.get("projects"), t.project):
        raise invalid(f"{t.describe()}: project {t.project} is not one this worker rolls on {t.host} "
                      f"({HOSTS_ENV}: hosts.{t.host}.projects)")
    check_networks(hosts, t, client, _joined(t))
    return client


def check_networks(hosts: DockerHosts, t: ComposeHostTarget, client: Any,
                   joined: list[tuple[str, str | None, bool]]) -> None:
    """Each (engine name, Compose key or None when unknown, named by the document) the containers would join:
    listed in the entry's `networks`, or a project network (`<project>_…`, not named by the document) that
    does not exist yet or carries the project's labels (and the key's, when known)."""
    entry = hosts.hosts()[t.host]
    for name, key, named in joined:
        if _listed(entry.get("networks"), name):
            continue
        if named or not name.startswith(f"{t.project}_"):
            raise invalid(f"{t.describe()}: network {name} is not a network Compose makes for project {t.project}: "
                          f"joining it needs it in {HOSTS_ENV}: hosts.{t.host}.networks")
        with docker_errors(t.describe()):
            found = [n for n in client.api.networks(names=[name]) if n.get("Name") == name]  # names= is a substring
        labels = (found[0].get("Labels") or {}) if found else {}
        if found and (labels.get(PROJECT_LABEL) != t.project or (key is not None and labels.get(NETWORK_LABEL) != key)):
            raise invalid(f"{t.describe()}: network {name} is not the project's (it belongs to "
                          f"{labels.get(PROJECT_LABEL) or 'no project'}, as {labels.get(NETWORK_LABEL) or 'no key'}): "
                          f"joining it needs it in {HOSTS_ENV}: hosts.{t.host}.networks")


def proxy_for(hosts: DockerHosts, t: ComposeHostTarget) -> Any:
    """The host's HAProxy (None without a `proxy` in the target), once its entry lets documents weight the
    target's backends."""
    if t.proxy is None:
        return None
    entry = hosts.hosts().get(t.host) or {}
    for backend in t.proxy.backends():
        if not _listed(entry.get("backends"), backend):
            raise invalid(f"{t.describe()}: backend {backend} is not one this worker weights on {t.host} "
                          f"({HOSTS_ENV}: hosts.{t.host}.backends)")
    return hosts.haproxy(t.host)


def _joined(t: ComposeHostTarget) -> list[tuple[str, str | None, bool]]:
    from activities.targets.compose.containers import network_name

    declared = t.compose.get("networks") or {}
    return [(network_name(t, key), key, bool({"name", "external"} & set(declared.get(key) or {})))
            for key in t.rolled().get("networks") or {"default": None}]
