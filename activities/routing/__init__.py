"""Traffic routers: how a weight becomes real traffic. One module per router, behind one Protocol.

Adding a router (Istio, NGINX, Gateway API, ...) means one new module here and one line in ROUTERS.
"""

from __future__ import annotations

from typing import Protocol

from activities.kube import KubeClients
from models.kubernetes import SetWeightInput, WeightResult


class TrafficRouter(Protocol):
    def set_weight(self, request: SetWeightInput) -> WeightResult:
        """Give the canary `request.weight` percent of traffic; idempotent; returns what is in effect."""
        ...


def router_for(name: str, clients: KubeClients) -> TrafficRouter:
    from activities.routing.replicas import ReplicaRatioRouter

    routers = {"replicas": ReplicaRatioRouter}
    if name not in routers:
        from temporalio.exceptions import ApplicationError

        raise ApplicationError(f"unknown traffic router {name!r}", type="InvalidTarget", non_retryable=True)
    return routers[name](clients)
