"""Blue-green activities on Kubernetes.

The old version keeps running in the target Deployment (`web`); the new one runs in `web-preview`,
behind the preview Service. While both run, the active Service is pinned to the old pods'
`pod-template-hash`, so it never selects preview pods; promotion re-points it at the preview pods
(`rollouts.durable.dev/role: preview`) in one Service update, and switching back is the reverse —
no pod is created or deleted either way. When the scale-down delay is over, `complete_blue_green`
hands the new version back to `web` (a rolling update nobody routes to), restores the Service's
own selector and removes `web-preview`.
"""

from __future__ import annotations

from kubernetes import client
from temporalio import activity

from activities.targets.kubernetes.client import KubeClients, api_errors
from activities.targets.kubernetes.deployments import ensure_sibling, put_image, remove_sibling, scale
from activities.targets.kubernetes.ownership import check_target, hold, release
from activities.targets.kubernetes.readiness import wait_settled
from activities.targets.kubernetes.routing import Routes, TrafficRouter, router_for
from activities.targets.kubernetes.services import (
    current_pod_template_hash,
    ensure_role_service,
    original_selector,
    set_selector,
    unpin,
)
from models.kubernetes import BlueGreenInput, BlueGreenPrepared, ScalePreviewInput, ShiftTrafficInput, SwitchActiveInput
from models.names import LABEL_POD_TEMPLATE_HASH, LABEL_ROLE, preview_deployment_name
from models.routing import RouteState

PREVIEW = "preview"


class BlueGreenActivities:
    def __init__(self, clients: KubeClients):
        self._clients = clients

    def _apis(self, request: BlueGreenInput) -> tuple[client.AppsV1Api, client.CoreV1Api]:
        context = request.target.context
        return self._clients.apps(context), self._clients.core(context)

    @activity.defn(name="prepare_blue_green")
    def prepare_blue_green(self, request: BlueGreenInput) -> BlueGreenPrepared:
        """Check the target, pin the active Service to the old pods, create the preview Deployment (0
        replicas) and the preview Service."""
        t = request.target
        apps, core = self._apis(request)
        target = check_target(apps, core, t, request.active_service, request.rollout_id)
        stable_hash = current_pod_template_hash(apps, t, request.progress_deadline_seconds)
        hold(apps, target, request.rollout_id, "blue-green")
        set_selector(core, target.service, {**original_selector(target.service), LABEL_POD_TEMPLATE_HASH: stable_hash})
        ensure_sibling(apps, target.stable, preview_deployment_name(t.deployment), PREVIEW, request.image, 0,
                       request.rollout_id, request.progress_deadline_seconds)
        ensure_role_service(core, target.service, request.preview_service, PREVIEW)
        if request.traffic_routing is not None:
            self._router(request).prepare()
        return BlueGreenPrepared(
            total_replicas=target.total_replicas,
            stable_image=target.container.image,
            stable_hash=stable_hash,
            container=target.container.name,
        )

    @activity.defn(name="scale_preview")
    def scale_preview(self, request: ScalePreviewInput) -> int:
        """Preview to `replicas` pods, all ready within the progress deadline; returns the ready count."""
        return self._preview_ready(request, request.replicas)

    def _preview_ready(self, request: BlueGreenInput, replicas: int) -> int:
        t = request.target
        apps, _ = self._apis(request)
        name = preview_deployment_name(t.deployment)
        scale(apps, t.namespace, name, replicas, {})
        return wait_settled(apps, t.namespace, name, request.progress_deadline_seconds).status.ready_replicas or 0

    def _router(self, request: BlueGreenInput) -> TrafficRouter:
        routes = Routes(request.target, request.traffic_routing, request.active_service, request.preview_service)
        return router_for(self._clients, routes)

    @activity.defn(name="shift_traffic")
    def shift_traffic(self, request: ShiftTrafficInput) -> None:
        """Gradual shift: the preview Service gets `weight` percent through the router (all preview pods ready first)."""
        self._preview_ready(request, request.total_replicas)
        self._router(request).apply(RouteState(weight=request.weight))

    @activity.defn(name="switch_active")
    def switch_active(self, request: SwitchActiveInput) -> None:
        """Point the active Service at `to` ("preview" or "stable"); that side must be fully ready first."""
        t = request.target
        apps, core = self._apis(request)
        side = preview_deployment_name(t.deployment) if request.to == PREVIEW else t.deployment
        ready = wait_settled(apps, t.namespace, side, request.progress_deadline_seconds)
        if (ready.spec.replicas or 0) < request.total_replicas:
            scale(apps, t.namespace, side, request.total_replicas, {})
            wait_settled(apps, t.namespace, side, request.progress_deadline_seconds)
        with api_errors(f"service {t.namespace}/{request.active_service}"):
            service = core.read_namespaced_service(request.active_service, t.namespace)
        pin = {LABEL_ROLE: PREVIEW} if request.to == PREVIEW else {LABEL_POD_TEMPLATE_HASH: request.stable_hash}
        if request.to != PREVIEW and request.traffic_routing is not None:
            self._router(request).remove()  # a gradual shift's weights back on the active Service first
        set_selector(core, service, {**original_selector(service), **pin})
        if request.to == PREVIEW and request.traffic_routing is not None:
            self._router(request).remove()  # the active Service is the new version now: it takes it all

    @activity.defn(name="complete_blue_green")
    def complete_blue_green(self, request: BlueGreenInput) -> None:
        """Hand the new version back to the target Deployment while the preview pods serve, then restore
        the active Service's own selector (both sides run the new version) and remove the preview."""
        t = request.target
        apps, core = self._apis(request)
        put_image(apps, t, request.container, request.image, request.total_replicas, request.progress_deadline_seconds)
        # Both sides run the new version now: the Service's own selector takes them all, then the preview goes.
        unpin(core, t.namespace, request.active_service)
        remove_sibling(apps, t.namespace, preview_deployment_name(t.deployment), request.progress_deadline_seconds)
        release(apps, t)

    @activity.defn(name="abort_blue_green")
    def abort_blue_green(self, request: BlueGreenInput) -> None:
        """Active back on the old pods (ready first), then the preview removed and the selector restored."""
        apps, core = self._apis(request)
        if request.stable_hash:  # empty when prepare never finished: nothing was pinned
            self.switch_active(SwitchActiveInput(**dict(request), to="stable"))
        t = request.target
        remove_sibling(apps, t.namespace, preview_deployment_name(t.deployment), request.progress_deadline_seconds)
        unpin(core, t.namespace, request.active_service)
        release(apps, t)
