"""The Kubernetes target's `DeliveryTarget` for a StatefulSet: a canary by its partition (models/workloads.py,
activities/targets/kubernetes/statefulset.py). A setWeight step is the share of ordinals on the new
revision; the rest of the Protocol (blue-green, in place, the rollback window) is refused at validation for
a StatefulSet, so a strategy never asks for it here."""

from __future__ import annotations

from typing import Any, Literal

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.targets.kubernetes.statefulset import StatefulSetActivities
    from models.delivery import PrepareCanaryResult, Wording
    from models.kubernetes import StatefulSetInput
    from models.routing import RouteState, SetCanaryScale
    from models.spec import CanaryStrategy, RolloutSpecBody
    from models.targets import KubernetesTarget
    from models.workloads import STATEFUL_SET, updated_ordinals
    from workflows import options


class StatefulSetDelivery:
    capabilities = STATEFUL_SET.CAPABILITIES

    def __init__(self, spec: RolloutSpecBody, rollout_id: str) -> None:
        self.spec, self.rollout_id = spec, rollout_id
        self.target: KubernetesTarget = spec.target.kubernetes
        self.options = options.kubernetes(spec.progress_deadline_seconds)
        self.words = Wording(f"statefulset {self.target.stateful_set}", "", KubernetesTarget.INSTANCES,
                             "the StatefulSet's partition to 0")

    def _input(self, **more: Any) -> StatefulSetInput:
        return StatefulSetInput(rollout_id=self.rollout_id, target=self.target, image=self.spec.image,
                                progress_deadline_seconds=self.spec.progress_deadline_seconds, **more)

    def _start(self, activity: Any, arg: StatefulSetInput, summary: str) -> Any:
        return workflow.start_activity_method(activity, arg, summary=summary, **self.options)

    def revisions(self, shape: Literal["canary", "blueGreen", "inPlace"]):
        return None  # a StatefulSet's pods carry controller-revision-hash, not a pod-template hash

    def prepare_canary(self, canary: CanaryStrategy):
        return self._start(StatefulSetActivities.prepare_stateful_canary, self._input(),
                           "new image on the template, partition at the replica count")

    def set_routes(self, canary: CanaryStrategy, step: int, total: int, routes: RouteState,
                   canary_scale: SetCanaryScale | None, summary: str):
        updated = updated_ordinals(routes.weight, total)
        return self._start(StatefulSetActivities.set_stateful_partition,
                           self._input(updated=updated, weight=routes.weight),
                           f"{summary}: partition {total - updated} ({updated} of {total} ordinals updated)")

    def promote_canary(self, canary: CanaryStrategy, prepared: PrepareCanaryResult):
        return self._start(StatefulSetActivities.promote_stateful_canary,
                           self._input(stable_image=prepared.stable_image, container=prepared.container),
                           "partition to 0: every ordinal on the new revision")

    def abort_canary(self, canary: CanaryStrategy, prepared: PrepareCanaryResult):
        return self._start(StatefulSetActivities.abort_stateful_canary,
                           self._input(stable_image=prepared.stable_image, container=prepared.container),
                           "abort: the stable image back, ordinal by ordinal")

    # What the capabilities say it cannot do (no instant switch, no in-place update, no warm window): refused
    # at validation (models/workloads.py), so never asked; tests/test_layout.py checks the two agree.
    REFUSED = frozenset({"prepare_blue_green", "blue_green_prepared", "blue_green_switchable", "scale_preview",
                         "shift_traffic", "switch_active", "complete_blue_green", "abort_blue_green",
                         "roll_out", "undo", "open_window", "switch_to_warm", "close_window"})

    def __getattr__(self, name: str) -> Any:
        if name in self.REFUSED:
            raise AttributeError(f"a StatefulSet rolls only as a canary by its partition (no {name})")
        raise AttributeError(name)
