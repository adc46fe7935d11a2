"""What a document may touch on a Docker host: the host's entry in the worker's hosts file says which Compose
projects documents may roll there (`projects`), which HAProxy backends they may weight (`backends`) and
which networks of others their containers may join (`networks`); `"*"` allows any. A document naming
another team's project, pointing its proxy at another service's backend, or joining another project's
network by `name:` (or `external`) is refused before the engine or the proxy is asked to change anything.

    hosts:
      web-1: {engine: "unix:///var/run/docker.sock", haproxy: "unix:///run/haproxy/admin.sock",
              projects: [shop], backends: [shop_web, shop_web_preview], networks: [edge]}
"""

from __future__ import annotations

from typing import Any

from activities.docker import HOSTS_ENV, DockerHosts, docker_errors, invalid
from models.compose import ComposeHostTarget

PROJECT_LABEL = "com.docker.compose.project"


def _listed(allowed: list[str] | None, name: str) -> bool:
    return bool(allowed) and ("*" in allowed or name in allowed)


def engine_for(hosts: DockerHosts, t: ComposeHostTarget) -> Any:
    """The host's engine, once its entry lets documents roll the target's project and join its networks."""
    client = hosts.client(t.host)
    entry = hosts.hosts()[t.host]
    if not _listed(entry.get("projects"), t.project):
        raise invalid(f"{t.describe()}: project {t.project} is not one this worker rolls on {t.host} "
                      f"({HOSTS_ENV}: hosts.{t.host}.projects)")
    for network in _joined(t):
        if _listed(entry.get("networks"), network):
            continue
        with docker_errors(t.describe()):
            found = client.api.networks(names=[network])
        owner = next((((n.get("Labels") or {}).get(PROJECT_LABEL)) for n in found if n.get("Name") == network), t.project)
        external = ((t.compose.get("networks") or {}).get(_key(t, network)) or {}).get("external")
        if owner != t.project or (external and found):
            raise invalid(f"{t.describe()}: network {network} is not the project's (it belongs to "
                          f"{owner or 'no project'}): joining it needs it in {HOSTS_ENV}: hosts.{t.host}.networks")
    return client


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


def _joined(t: ComposeHostTarget) -> list[str]:
    from activities.targets.compose.containers import network_name

    networks = t.rolled().get("networks") or {"default": None}
    return [network_name(t, key) for key in networks]


def _key(t: ComposeHostTarget, network: str) -> str:
    from activities.targets.compose.containers import network_name

    return next((k for k in (t.compose.get("networks") or {}) if network_name(t, k) == network), "")
