"""Replica-ratio router: no mesh. The stable Service selects both versions' pods, so the canary's share
of traffic is its share of ready pods: a weight w of N replicas runs ceil(N·w/100) canary pods and the
rest stable. There are no router objects: routing is the sizes alone (the canary activity changes them
capacity first), and header or mirror routes are refused by spec validation."""

from __future__ import annotations

from activities.targets.kubernetes.client import KubeClients
from activities.targets.kubernetes.routing import Routes, Sizes, replica_split
from models.routing import RouteState, SetCanaryScale


class ReplicaRatioRouter:
    owns_weights = False
    pins_stable_service = False

    def __init__(self, clients: KubeClients, routes: Routes):
        self.routes = routes

    def sizes(self, total: int, state: RouteState, canary_scale: SetCanaryScale | None, dynamic_stable_scale: bool
              ) -> Sizes:
        canary, stable = replica_split(total, state.weight)
        return Sizes(canary=canary, stable=stable, weight=round(100.0 * canary / max(1, total), 2))

    def prepare(self) -> None:
        """Nothing to check beyond the target: the stable Service selecting the stable pods is checked there."""

    def apply(self, state: RouteState) -> bool:
        return False  # the split is the ratio of ready pods

    def remove(self) -> None:
        """All traffic to stable follows from the canary at zero pods."""
