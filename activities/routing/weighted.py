"""A canary step through a router with weights of its own (istio, nginx, gatewayAPI).

Capacity first: whichever Deployment needs more pods grows and becomes ready, then the router's
objects change, then whichever needs fewer pods shrinks. The canary runs ceil(N x weight) pods unless
`setCanaryScale` says otherwise (at least one while header or mirror routes send it requests);
with `dynamicStableScale` stable shrinks to what its share of traffic needs.
"""

from __future__ import annotations

from activities.kube import KubeClients, wait_settled
from activities.routing import Routes, router_for
from activities.routing.replicas import check_not_stale, replica_split, scale
from models.kubernetes import SetWeightInput, WeightResult
from models.names import ANNOTATION_STEP, ANNOTATION_WEIGHT, canary_deployment_name
from models.routing import RouteState, SetCanaryScale


def canary_size(total: int, state: RouteState, canary_scale: SetCanaryScale | None) -> int:
    if canary_scale is None or canary_scale.match_traffic_weight:
        replicas = replica_split(total, state.weight)[0]
    elif canary_scale.replicas is not None:
        replicas = canary_scale.replicas
    else:
        replicas = replica_split(total, canary_scale.weight or 0)[0]
    if state.header_routes or state.mirror_routes:
        replicas = max(replicas, 1)
    return replicas


def routes_of(request) -> Routes:
    return Routes(request.target, request.traffic_routing, request.stable_service, request.canary_service)


def set_weight(clients: KubeClients, request: SetWeightInput) -> WeightResult:
    t = request.target
    apps = clients.apps(t.context)
    ns, stable = t.namespace, t.deployment
    canary = canary_deployment_name(stable)
    state = request.routes or RouteState(weight=request.weight)
    total = request.total_replicas
    canary_replicas = canary_size(total, state, request.canary_scale)
    stable_replicas = replica_split(total, state.weight)[1] if request.dynamic_stable_scale else total
    stable_replicas = max(stable_replicas, 0 if state.weight == 100 else 1)
    current = {canary: check_not_stale(apps, ns, canary, request.step).spec.replicas or 0,
               stable: apps.read_namespaced_deployment(stable, ns).spec.replicas or 0}
    wanted = {canary: canary_replicas, stable: stable_replicas}
    marks = {ANNOTATION_WEIGHT: str(state.weight), ANNOTATION_STEP: str(request.step)}
    deadline = request.progress_deadline_seconds

    changed = False
    for name in (canary, stable):  # grow
        if wanted[name] > current[name]:
            changed |= scale(apps, ns, name, wanted[name], {})
            wait_settled(apps, ns, name, deadline)
    wait_settled(apps, ns, canary, deadline)  # never route to canary pods that are not ready
    changed |= router_for(clients, routes_of(request)).apply(state)
    for name in (stable, canary):  # shrink (and mark the step done on the canary)
        changed |= scale(apps, ns, name, wanted[name], marks if name == canary else {})
        wait_settled(apps, ns, name, deadline)
    return WeightResult(
        weight=state.weight,
        canary_replicas=canary_replicas,
        stable_replicas=stable_replicas,
        actual_weight=float(state.weight),
        changed=changed,
    )

