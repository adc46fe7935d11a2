"""The Kubernetes target's `DeliveryTarget` for a Deployment in a cluster (`delivery` picks it, or a
StatefulSet's or DaemonSet's: workflows/targets/inplace.py). The canary is a second Deployment (`<name>-canary`) behind the spec's traffic router, the blue-green preview a `<name>-preview` behind the
preview Service, the in-place updates the Deployment's own rolling update, the rollback window warm
copies of earlier ReplicaSets. The activities are in activities/targets/kubernetes/; their inputs are
built here, the same as the strategies built them before this seam (recorded histories replay)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.targets.kubernetes.bluegreen import BlueGreenActivities
    from activities.targets.kubernetes.canary import CanaryActivities
    from activities.targets.kubernetes.observe import ObserveActivities
    from activities.targets.kubernetes.rolling import DeploymentActivities
    from activities.targets.kubernetes.window import WindowActivities
    from models.delivery import BlueGreenPrepared, InPlaceUpdate, PrepareCanaryResult, Wording
    from models.kubernetes import (
        BlueGreenInput,
        FinishInput,
        PrepareCanaryInput,
        RollOutInput,
        ScalePreviewInput,
        SetWeightInput,
        ShiftTrafficInput,
        SwitchActiveInput,
        UndoInput,
        WindowInput,
    )
    from models.names import canary_deployment_name, preview_deployment_name
    from models.routing import RouteState, SetCanaryScale
    from models.spec import BlueGreenStrategy, CanaryStrategy, RolloutSpecBody
    from models.targets import KubernetesTarget
    from workflows import options
    from workflows.targets.inplace import DaemonSetDelivery, StatefulSetDelivery


class KubernetesDelivery:
    capabilities = KubernetesTarget.CAPABILITIES

    def __init__(self, spec: RolloutSpecBody, rollout_id: str) -> None:
        self.spec, self.rollout_id = spec, rollout_id
        self.target: KubernetesTarget = spec.target.kubernetes
        self.options = options.kubernetes(spec.progress_deadline_seconds)
        self.blue_green_input: BlueGreenInput | None = None
        self.window_input: WindowInput | None = None
        bg = spec.strategy.blue_green
        self.words = Wording(bg.active_service if bg else "", bg.preview_service if bg else "", KubernetesTarget.INSTANCES,
                             "hand the new version back to the Deployment, remove the preview")

    def _start(self, activity: Any, arg: Any, summary: str) -> Any:
        return workflow.start_activity_method(activity, arg, summary=summary, **self.options)

    def revisions(self, shape: Literal["canary", "blueGreen", "inPlace"]):
        """valueFrom.podTemplateHashValue: Latest the new version's pods (the canary's, the preview's, or the
        Deployment's current revision), Stable the target Deployment's."""
        t = self.target
        if t is None:
            return None
        if shape == "canary":
            return template_hashes(t, canary_deployment_name(t.deployment), t.deployment)
        if shape == "blueGreen":
            return template_hashes(t, preview_deployment_name(t.deployment), t.deployment)
        return template_hashes(t, t.deployment, None)

    # -- canary ------------------------------------------------------------------------------------------
    def _canary(self, canary: CanaryStrategy) -> dict[str, Any]:
        """What the prepare and finish activities both need to know."""
        spec = self.spec
        return {"rollout_id": self.rollout_id, "target": self.target, "image": spec.image,
                "stable_service": canary.stable_service, "canary_service": canary.canary_service,
                "progress_deadline_seconds": spec.progress_deadline_seconds, "traffic_routing": canary.traffic_routing}

    def _finish(self, canary: CanaryStrategy, prepared: PrepareCanaryResult) -> FinishInput:
        return FinishInput(**self._canary(canary), container=prepared.container, total_replicas=prepared.total_replicas)

    def prepare_canary(self, canary: CanaryStrategy):
        return self._start(CanaryActivities.prepare_canary, PrepareCanaryInput(**self._canary(canary)), "prepare canary")

    def set_routes(self, canary: CanaryStrategy, step: int, total: int, routes: RouteState,
                   canary_scale: SetCanaryScale | None, summary: str):
        """The whole routing the step wants, applied by one idempotent activity, capacity first."""
        return self._start(CanaryActivities.set_canary_weight, SetWeightInput(
            rollout_id=self.rollout_id, target=self.target, weight=routes.weight, step=step, total_replicas=total,
            progress_deadline_seconds=self.spec.progress_deadline_seconds, traffic_routing=canary.traffic_routing,
            stable_service=canary.stable_service, canary_service=canary.canary_service, routes=routes,
            canary_scale=canary_scale, dynamic_stable_scale=canary.dynamic_stable_scale), summary)

    def promote_canary(self, canary: CanaryStrategy, prepared: PrepareCanaryResult):
        return self._start(CanaryActivities.promote_canary, self._finish(canary, prepared), "promote stable to new image")

    def abort_canary(self, canary: CanaryStrategy, prepared: PrepareCanaryResult):
        return self._start(CanaryActivities.abort_canary, self._finish(canary, prepared), "abort: traffic back to stable")

    # -- blue-green --------------------------------------------------------------------------------------
    def prepare_blue_green(self, blue_green: BlueGreenStrategy):
        spec = self.spec
        self.blue_green_input = BlueGreenInput(
            rollout_id=self.rollout_id, target=self.target, image=spec.image,
            active_service=blue_green.active_service, preview_service=blue_green.preview_service,
            progress_deadline_seconds=spec.progress_deadline_seconds,
            traffic_routing=blue_green.traffic_routing if blue_green.gradual_shift else None,
        )
        return self._start(BlueGreenActivities.prepare_blue_green, self.blue_green_input, "prepare blue-green")

    def blue_green_prepared(self, prepared: BlueGreenPrepared) -> None:
        assert self.blue_green_input is not None
        self.blue_green_input = self.blue_green_input.model_copy(update={
            "total_replicas": prepared.total_replicas, "stable_hash": prepared.stable_hash,
            "container": prepared.container})

    @property
    def blue_green_switchable(self) -> bool:
        return self.blue_green_input is not None and bool(self.blue_green_input.stable_hash)

    def _blue_green(self, activity: Any, summary: str, kind: type[BlueGreenInput] = BlueGreenInput, **more: Any):
        """One blue-green activity with `more` of its own fields (its input model: `kind`)."""
        assert self.blue_green_input is not None
        return self._start(activity, kind(**dict(self.blue_green_input), **more), summary)

    def scale_preview(self, replicas: int):
        return self._blue_green(BlueGreenActivities.scale_preview, f"preview to {replicas} pods", ScalePreviewInput,
                                replicas=replicas)

    def shift_traffic(self, weight: int):
        return self._blue_green(BlueGreenActivities.shift_traffic, f"shift {weight}% to preview", ShiftTrafficInput,
                                weight=weight)

    def switch_active(self, to: Literal["preview", "stable"], summary: str):
        return self._blue_green(BlueGreenActivities.switch_active, summary, SwitchActiveInput, to=to)

    def complete_blue_green(self):
        return self._blue_green(BlueGreenActivities.complete_blue_green, "hand back and remove preview")

    def abort_blue_green(self):
        assert self.blue_green_input is not None
        return self._start(BlueGreenActivities.abort_blue_green, self.blue_green_input, "remove preview")

    # -- in place ----------------------------------------------------------------------------------------
    def roll_out(self, update: InPlaceUpdate, summary: str):
        return self._start(DeploymentActivities.roll_out_deployment, RollOutInput(
            rollout_id=self.rollout_id, target=self.target, progress_deadline_seconds=self.spec.progress_deadline_seconds,
            **update.model_dump()), summary)

    def undo(self):
        return self._start(DeploymentActivities.undo_deployment, UndoInput(
            rollout_id=self.rollout_id, target=self.target, progress_deadline_seconds=self.spec.progress_deadline_seconds),
            "undo to the previous revision")

    # -- rollback window ---------------------------------------------------------------------------------
    def open_window(self, service: str, revisions: int):
        self.window_input = WindowInput(rollout_id=self.rollout_id, target=self.target, service=service,
                                        revisions=revisions, progress_deadline_seconds=self.spec.progress_deadline_seconds)
        return self._start(WindowActivities.keep_warm, self.window_input, "keep previous revisions warm")

    def switch_to_warm(self, revision: int):
        assert self.window_input is not None
        return self._start(WindowActivities.switch_to_warm, self.window_input.model_copy(update={"revision": revision}),
                           f"service to warm revision {revision}")

    def close_window(self):
        assert self.window_input is not None
        return self._start(WindowActivities.close_window, self.window_input, "remove warm copies")


def template_hashes(target: KubernetesTarget, latest: str, stable: str | None) -> Callable[[str], Awaitable[str]]:
    """What a strategy hands its analyses for valueFrom.podTemplateHashValue: role (Latest, Stable) -> the
    pod-template-hash of that Deployment's current revision in the target's namespace, read when asked."""
    deployments = {"Latest": latest} | ({"Stable": stable} if stable else {})

    async def read(role: str) -> str:
        where = target.model_copy(update={"deployment": deployments[role]})
        return await workflow.execute_activity_method(
            ObserveActivities.pod_template_hash, where, summary=f"{role} pods' template hash: {where.describe()}",
            start_to_close_timeout=timedelta(seconds=30), heartbeat_timeout=options.HEARTBEAT,
            retry_policy=RetryPolicy(maximum_attempts=15, maximum_interval=timedelta(seconds=2),
                                     non_retryable_error_types=options.PERMANENT))

    return read


def delivery(spec: RolloutSpecBody, rollout_id: str) -> KubernetesDelivery | StatefulSetDelivery | DaemonSetDelivery:
    """The record's adapter (models/targets.py): the target's workload picks it (`ADAPTERS` lists them)."""
    t = spec.target.kubernetes
    adapter = StatefulSetDelivery if t.stateful_set else DaemonSetDelivery if t.daemon_set else KubernetesDelivery
    return adapter(spec, rollout_id)


delivery.ADAPTERS = (KubernetesDelivery, StatefulSetDelivery, DaemonSetDelivery)
