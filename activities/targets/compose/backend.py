"""The service's containers as the proxy's backend servers (activities/targets/compose/haproxy.py): who may
be in the backend (the service's containers, nothing else), every ready container served, a container
drained out of it before it stops. Without a `proxy` in the target these do nothing."""

from __future__ import annotations

from typing import Any

from activities.docker import invalid
from activities.targets.compose.containers import Container, where
from models.compose import ComposeHostTarget


def address(container: Container) -> str:
    """The container's address on its first network (the proxy reaches the host's bridge networks)."""
    networks = container.attrs["NetworkSettings"].get("Networks") or {}
    first = next(iter(container.config()["networks"]), None)
    found = (networks.get(first) or next(iter(networks.values()), {})).get("IPAddress") if networks else ""
    if not found:
        raise invalid(f"{container.name}: no address on its network")
    return found


def adopt(proxy: Any, t: ComposeHostTarget, found: list[Container], weight: int = 1) -> dict[str, dict]:
    """Refuse a backend holding servers that are not the service's containers; serve every ready container
    not served yet (at `weight`). The backend's servers after that."""
    if proxy is None:
        return {}
    names = {c.name for c in found}
    for backend in t.proxy.backends():
        strangers = sorted(set(proxy.servers(backend)) - names)
        if strangers:
            raise invalid(f"{where(t)}: backend {backend} serves {', '.join(strangers[:3])}, not containers of the "
                          "service: the engine owns that backend's servers (remove them, or name another backend)")
    servers = proxy.servers(t.proxy.backend)
    serve_ready(proxy, t, found, servers, weight)
    return proxy.servers(t.proxy.backend)


def serve_ready(proxy: Any, t: ComposeHostTarget, found: list[Container], servers: dict[str, dict],
                weight: int, backend: str = "") -> bool:
    """Serve the ready containers not in the backend (the production one by default) yet, an enabled server
    for each; whether any was."""
    if proxy is None:
        return False
    added = False
    for container in found:
        if container.name not in servers and container.ready(t.ready_after_seconds):
            proxy.serve(backend or t.proxy.backend, container.name, address(container), t.proxy.port, weight)
            added = True
    return added

