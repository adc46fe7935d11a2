"""Traffic routers: how a canary's weight, header routes and mirror routes become real traffic.
One module per router, behind one small Protocol; the spec's `trafficRouting` picks one.

`replicas` (no mesh) is the weight as a ratio of ready pods behind one Service and has no routes;
the others own their weights (`istio`, `nginx`, `gatewayAPI`) and are driven by `weighted.py`:
capacity first, then the router's objects, then capacity last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from temporalio.exceptions import ApplicationError

from activities.kube import KubeClients
from models.routing import RouteState, TrafficRouting
from models.spec import KubernetesTarget

ANNOTATION_MANAGED_ROUTES = "rollouts.durable.dev/managed-routes"


@dataclass(frozen=True)
class Routes:
    """What a router is asked to route: the target namespace, the two Services, the router's config."""

    target: KubernetesTarget
    routing: TrafficRouting
    stable_service: str
    canary_service: str


class TrafficRouter(Protocol):
    def prepare(self) -> None:
        """Check the router's objects exist and route to both Services (raise InvalidTarget naming
        what is wrong, before any traffic moves); create what the engine manages."""
        ...

    def apply(self, state: RouteState) -> bool:
        """Make the objects say `state` (idempotent, resourceVersion-checked); True if anything changed."""
        ...

    def remove(self) -> None:
        """All traffic to stable, no routes of ours left (what the engine created is deleted)."""
        ...


def router_for(clients: KubeClients, routes: Routes) -> TrafficRouter:
    from activities.routing.gateway import GatewayApiRouter
    from activities.routing.istio import IstioRouter
    from activities.routing.nginx import NginxRouter

    routers = {"istio": IstioRouter, "nginx": NginxRouter, "gatewayAPI": GatewayApiRouter}
    name = routes.routing.router
    if name not in routers:
        raise ApplicationError(f"traffic router {name!r} has no weights of its own", type="InvalidTarget",
                               non_retryable=True)
    return routers[name](clients, routes)


def invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type="InvalidTarget", non_retryable=True)


def managed_names(obj: dict[str, Any]) -> set[str]:
    """Names of the routes the engine added to a router object (kept in an annotation)."""
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_MANAGED_ROUTES, "")
    return {name for name in text.split(",") if name}


def set_managed_names(obj: dict[str, Any], names: list[str]) -> None:
    annotations = obj.setdefault("metadata", {}).setdefault("annotations", {}) or {}
    if names:
        annotations[ANNOTATION_MANAGED_ROUTES] = ",".join(names)
    else:
        annotations.pop(ANNOTATION_MANAGED_ROUTES, None)
    obj["metadata"]["annotations"] = annotations


def split(weight: int) -> tuple[int, int]:
    """(stable, canary) weights."""
    return 100 - weight, weight
