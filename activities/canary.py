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

from activities.kube import KubeClients, api_errors, read_optional, wait_settled
from activities.routing import router_for, weighted
from activities.routing.replicas import ReplicaRatioRouter, scale
from activities.routing.weighted import routes_of
from activities.siblings import (
    check_target,
    ensure_role_service,
    ensure_sibling,
    hold,
    pin_to_current_pods,
    put_image,
    release,
    remove_sibling,
    runs,
    unpin,
)
from models.kubernetes import FinishInput, PrepareCanaryInput, PrepareCanaryResult, SetWeightInput, WeightResult
from models.names import ANNOTATION_WEIGHT, canary_deployment_name
from models.routing import RouteState


class CanaryActivities:
    def __init__(self, clients: KubeClients):
        self._clients = clients

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
        if _mesh(request):
            router_for(self._clients, routes_of(request)).prepare()
        if _pins_stable_service(request):
            # The stable Service (a router's stable destination) must not select the canary's pods.
            pin_to_current_pods(apps, core, target, t, request.progress_deadline_seconds)
        return PrepareCanaryResult(
            total_replicas=target.total_replicas, stable_image=target.container.image, container=target.container.name
        )

    @activity.defn(name="set_canary_weight")
    def set_canary_weight(self, request: SetWeightInput) -> WeightResult:
        if request.router == "replicas":
            return ReplicaRatioRouter(self._clients).set_weight(request)
        return weighted.set_weight(self._clients, request)

    def _send_all_to_stable(self, request: FinishInput) -> None:
        """Routers with weights of their own: all traffic to stable, our routes removed."""
        if _mesh(request):
            router_for(self._clients, routes_of(request)).remove()

    @activity.defn(name="promote_canary")
    def promote_canary(self, request: FinishInput) -> None:
        """Stable takes the new image at full size; once it is settled the canary Deployment is removed."""
        t = request.target
        apps = self._clients.apps(t.context)
        ns = t.namespace
        router = router_for(self._clients, routes_of(request)) if _mesh(request) else None
        canary = canary_deployment_name(t.deployment)
        with api_errors(f"deployment {ns}/{t.deployment}"):
            stable = apps.read_namespaced_deployment(t.deployment, ns)
        promoted = runs(stable, request.container, request.image, request.total_replicas)
        if router is not None and not promoted and read_optional(apps.read_namespaced_deployment, canary, ns) is not None:
            # Full promotion: the canary, at full size, takes all traffic while the stable pods change
            # (not again when a retry finds stable already on the new image: traffic never flips back).
            scale(apps, ns, canary, request.total_replicas, {})
            wait_settled(apps, ns, canary, request.progress_deadline_seconds)
            router.apply(RouteState(weight=100))
        put_image(apps, t, request.container, request.image, request.total_replicas, request.progress_deadline_seconds)
        if router is not None:
            if _pins_stable_service(request):
                unpin(self._clients.core(t.context), ns, request.stable_service)
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
        wait_settled(apps, ns, t.deployment, request.progress_deadline_seconds)
        self._send_all_to_stable(request)
        canary = canary_deployment_name(t.deployment)
        try:
            scale(apps, ns, canary, 0, {ANNOTATION_WEIGHT: "0"})
        except ApplicationError as error:
            if error.type != "NotFound":
                raise
        else:
            wait_settled(apps, ns, canary, request.progress_deadline_seconds)
        if _pins_stable_service(request):
            unpin(self._clients.core(t.context), ns, request.stable_service)
        release(apps, t)

    def _remove_canary(self, apps: client.AppsV1Api, request: FinishInput) -> None:
        t = request.target
        remove_sibling(apps, t.namespace, canary_deployment_name(t.deployment), request.progress_deadline_seconds)
        release(apps, t)


def _mesh(request: PrepareCanaryInput | FinishInput) -> bool:
    """A router with weights of its own (not the replica ratio)."""
    return request.traffic_routing is not None and request.traffic_routing.router != "replicas"


def _pins_stable_service(request: PrepareCanaryInput | FinishInput) -> bool:
    """Routers that send to the stable Service need it to select only stable pods; an Istio
    DestinationRule selects by subset labels on one host instead."""
    routing = request.traffic_routing
    return _mesh(request) and not (routing.istio is not None and routing.istio.destination_rule is not None)
