"""Canary activities on Kubernetes: prepare the canary, set a weight (through the spec's router),
promote (stable takes the new image) and abort (all traffic back to stable, canary to zero).

Every activity is idempotent: it reads the cluster, changes only what differs, and a retry after a
crash finds its own earlier work already done. The worker builds one `CanaryActivities` with its
clients and registers the bound methods.
"""

from __future__ import annotations

from kubernetes import client
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.targets.kubernetes.client import KubeClients, api_errors, read_optional
from activities.targets.kubernetes.deployments import (
    check_not_stale,
    ensure_sibling,
    put_image,
    remove_sibling,
    runs,
    scale,
)
from activities.targets.kubernetes.ownership import check_target, hold, release
from activities.targets.kubernetes.readiness import wait_in_endpoints, wait_settled
from activities.targets.kubernetes.routing import Routes, TrafficRouter, router_for
from activities.targets.kubernetes.services import ensure_role_service, pin_to_current_pods, unpin
from models.kubernetes import FinishInput, PrepareCanaryInput, PrepareCanaryResult, SetWeightInput, WeightResult
from models.names import ANNOTATION_STEP, ANNOTATION_WEIGHT, canary_deployment_name
from models.routing import ReplicasRouting, RouteState, TrafficRouting

REPLICA_RATIO = TrafficRouting(replicas=ReplicasRouting())  # what inputs without a router meant


class CanaryActivities:
    def __init__(self, clients: KubeClients):
        self._clients = clients

    def _router(self, request: PrepareCanaryInput | SetWeightInput | FinishInput) -> TrafficRouter:
        routing = request.traffic_routing or REPLICA_RATIO
        return router_for(self._clients, Routes(request.target, routing, request.stable_service, request.canary_service))

    @activity.defn(name="prepare_canary")
    def prepare_canary(self, request: PrepareCanaryInput) -> PrepareCanaryResult:
        """Check the target, remember the stable size, create the canary Deployment (0 replicas) and Service."""
        t = request.target
        apps, core = self._clients.apps(t.context), self._clients.core(t.context)
        target = check_target(apps, core, t, request.stable_service, request.rollout_id)
        hold(apps, target, request.rollout_id, "canary")
        name = canary_deployment_name(t.deployment)
        ensure_sibling(apps, target.stable, name, "canary", request.image, 0, request.rollout_id,
                       request.progress_deadline_seconds)
        ensure_role_service(core, target.service, request.canary_service, "canary")
        router = self._router(request)
        router.prepare()
        if router.pins_stable_service:  # the router's stable destination must not select the canary's pods
            pin_to_current_pods(apps, core, target.service, t, request.progress_deadline_seconds)
        return PrepareCanaryResult(
            total_replicas=target.total_replicas, stable_image=target.container.image, container=target.container.name
        )

    @activity.defn(name="set_canary_weight")
    def set_canary_weight(self, request: SetWeightInput) -> WeightResult:
        """The routing a step wants, capacity first: whichever Deployment needs more pods grows and becomes
        ready, then the router's objects change, then whichever needs fewer pods shrinks (and the canary
        is marked with the step, so a late attempt of an earlier step is refused as stale)."""
        t = request.target
        apps = self._clients.apps(t.context)
        ns, stable = t.namespace, t.deployment
        canary = canary_deployment_name(stable)
        router = self._router(request)
        state = request.routes or RouteState(weight=request.weight)
        sizes = router.sizes(request.total_replicas, state, request.canary_scale, request.dynamic_stable_scale)
        current = {canary: check_not_stale(apps, ns, canary, request.step).spec.replicas or 0,
                   stable: apps.read_namespaced_deployment(stable, ns).spec.replicas or 0}
        wanted = {canary: sizes.canary, stable: sizes.stable}
        marks = {ANNOTATION_WEIGHT: str(state.weight), ANNOTATION_STEP: str(request.step)}
        deadline = request.progress_deadline_seconds

        changed = False
        for name in (canary, stable):  # grow
            if wanted[name] > current[name]:
                changed |= scale(apps, ns, name, wanted[name], {})
                wait_settled(apps, ns, name, deadline)
        ready = wait_settled(apps, ns, canary, deadline)  # never route to canary pods that are not ready
        if sizes.canary:  # nor to a Service whose endpoints do not list them yet
            wait_in_endpoints(self._clients.core(t.context), ready, deadline)
        changed |= router.apply(state)
        for name in (stable, canary):  # shrink (and mark the step done on the canary)
            changed |= scale(apps, ns, name, wanted[name], marks if name == canary else {})
            wait_settled(apps, ns, name, deadline)
        return WeightResult(weight=state.weight, canary_replicas=sizes.canary, stable_replicas=sizes.stable,
                            actual_weight=sizes.weight, changed=changed)

    @activity.defn(name="promote_canary")
    def promote_canary(self, request: FinishInput) -> None:
        """Stable takes the new image at full size; once it is settled the canary Deployment is removed."""
        t = request.target
        apps = self._clients.apps(t.context)
        ns = t.namespace
        router = self._router(request)
        canary = canary_deployment_name(t.deployment)
        with api_errors(f"deployment {ns}/{t.deployment}"):
            stable = apps.read_namespaced_deployment(t.deployment, ns)
        promoted = runs(stable, request.container, request.image, request.total_replicas)
        if router.owns_weights and not promoted and read_optional(apps.read_namespaced_deployment, canary, ns) is not None:
            # Full promotion: the canary, at full size, takes all traffic while the stable pods change
            # (not again when a retry finds stable already on the new image: traffic never flips back).
            scale(apps, ns, canary, request.total_replicas, {})
            ready = wait_settled(apps, ns, canary, request.progress_deadline_seconds)
            wait_in_endpoints(self._clients.core(t.context), ready, request.progress_deadline_seconds)
            router.apply(RouteState(weight=100))
        stable = put_image(apps, t, request.container, request.image, request.total_replicas,
                           request.progress_deadline_seconds)
        if router.pins_stable_service:
            unpin(self._clients.core(t.context), ns, request.stable_service)
        # Traffic goes back to the stable Service only once its endpoints list the new stable pods: the
        # unpinned selector (and the new pods) reach the endpoints a moment later, and until then the
        # Service has no backend for it (a mesh answers 503).
        wait_in_endpoints(self._clients.core(t.context), stable, request.progress_deadline_seconds)
        router.prepare()  # with a DestinationRule: the stable subset follows the new pods
        router.remove()  # all traffic to the (new) stable
        self._remove_canary(apps, request)

    @activity.defn(name="abort_canary")
    def abort_canary(self, request: FinishInput) -> None:
        """Stable back to full size and ready first (never route to an unready stable), then canary to zero."""
        t = request.target
        apps = self._clients.apps(t.context)
        ns = t.namespace
        scale(apps, ns, t.deployment, request.total_replicas, {})
        stable = wait_settled(apps, ns, t.deployment, request.progress_deadline_seconds)
        wait_in_endpoints(self._clients.core(t.context), stable, request.progress_deadline_seconds)
        router = self._router(request)
        router.remove()
        canary = canary_deployment_name(t.deployment)
        try:
            scale(apps, ns, canary, 0, {ANNOTATION_WEIGHT: "0"})
        except ApplicationError as error:
            if error.type != "NotFound":
                raise
        else:
            wait_settled(apps, ns, canary, request.progress_deadline_seconds)
        if router.pins_stable_service:
            unpin(self._clients.core(t.context), ns, request.stable_service)
        release(apps, t)

    def _remove_canary(self, apps: client.AppsV1Api, request: FinishInput) -> None:
        t = request.target
        remove_sibling(apps, t.namespace, canary_deployment_name(t.deployment), request.progress_deadline_seconds)
        release(apps, t)
