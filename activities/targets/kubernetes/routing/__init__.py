"""Traffic routers: how a canary's weight, header routes and mirror routes become real traffic. Every
router — the plain replica ratio included — implements `TrafficRouter`, one module each, and
`router_for` is the one place that picks it from the spec's `trafficRouting`.

The capacity-first step that drives a router (grow, wait, route, shrink) is the canary activity's
(`activities/targets/kubernetes/canary.py`); a router only says how many pods each side needs for a
routing and makes its objects say that routing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from activities.targets.kubernetes.client import KubeClients
from models.kubernetes import KubernetesTarget
from models.routing import RouteState, SetCanaryScale, TrafficRouting

ANNOTATION_MANAGED_ROUTES = "rollouts.durable.dev/managed-routes"


@dataclass(frozen=True)
class Routes:
    """What a router is asked to route: the target namespace, the two Services, the router's config."""

    target: KubernetesTarget
    routing: TrafficRouting
    stable_service: str
    canary_service: str


@dataclass(frozen=True)
class Sizes:
    """Pods per side for one routing, and the canary's share of traffic that results."""

    canary: int
    stable: int
    weight: float


class TrafficRouter(Protocol):
    owns_weights: bool
    """True when the router's own objects split traffic by weight; False when the split is the ratio
    of ready pods behind one Service (then a full promotion has nothing to route)."""

    pins_stable_service: bool
    """The stable Service must select only the stable pods while the canary runs (it is the router's
    stable destination)."""

    def sizes(self, total: int, state: RouteState, canary_scale: SetCanaryScale | None, dynamic_stable_scale: bool
              ) -> Sizes:
        """How many canary and stable pods `state` needs, out of the stable Deployment's `total`."""
        ...

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
    """The one place a router is chosen."""
    from activities.targets.kubernetes.routing.gateway import GatewayApiRouter
    from activities.targets.kubernetes.routing.istio import IstioRouter
    from activities.targets.kubernetes.routing.nginx import NginxRouter
    from activities.targets.kubernetes.routing.replicas import ReplicaRatioRouter

    routers = {"replicas": ReplicaRatioRouter, "istio": IstioRouter, "nginx": NginxRouter,
               "gatewayAPI": GatewayApiRouter}
    return routers[routes.routing.router](clients, routes)


def replica_split(total: int, weight: int) -> tuple[int, int]:
    """(canary, stable) replica counts for a weight in percent: ceil(total × weight) canary pods."""
    canary = min(total, -(-total * weight // 100)) if weight > 0 else 0
    return canary, total - canary


class OwnWeights:
    """What the routers with weights of their own share: the canary runs ceil(N × weight) pods unless
    `setCanaryScale` says otherwise (at least one while header or mirror routes send it requests);
    stable stays at N unless `dynamicStableScale` shrinks it to its share (never below one before 100%)."""

    owns_weights = True
    pins_stable_service = True

    def sizes(self, total: int, state: RouteState, canary_scale: SetCanaryScale | None, dynamic_stable_scale: bool
              ) -> Sizes:
        if canary_scale is None or canary_scale.match_traffic_weight:
            canary = replica_split(total, state.weight)[0]
        elif canary_scale.replicas is not None:
            canary = canary_scale.replicas
        else:
            canary = replica_split(total, canary_scale.weight or 0)[0]
        if state.header_routes or state.mirror_routes:
            canary = max(canary, 1)
        stable = replica_split(total, state.weight)[1] if dynamic_stable_scale else total
        return Sizes(canary=canary, stable=max(stable, 0 if state.weight == 100 else 1), weight=float(state.weight))


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
