"""The Kubernetes target's `DeliveryTarget` for a workload updated in place, step by step — a StatefulSet by
its partition (activities/targets/kubernetes/statefulset.py), a DaemonSet node by node (…/daemonset.py):
a setWeight step is the share of its ordinals or nodes on the new revision; the rest of the Protocol
(blue-green, in place, the rollback window) is refused at validation for these workloads
(models/workloads.py), so a strategy never asks for it here. Each workload's class names its four activities."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.targets.kubernetes.daemonset import DaemonSetActivities
    from activities.targets.kubernetes.statefulset import StatefulSetActivities
    from models.delivery import PrepareCanaryResult, Wording
    from models.kubernetes import WorkloadInput
    from models.routing import RouteState, SetCanaryScale
    from models.spec import CanaryStrategy, RolloutSpecBody
    from models.targets import KubernetesTarget
    from models.workloads import InPlaceRules, updated_ordinals
    from workflows import options


class InPlaceDelivery:
    capabilities = InPlaceRules.CAPABILITIES
    PREPARE: ClassVar[Any]
    MOVE: ClassVar[Any]
    PROMOTE: ClassVar[Any]
    ABORT: ClassVar[Any]
    UNITS: ClassVar[str]  # what a step moves: "ordinals", "nodes"

    # What the capabilities say it cannot do (no instant switch, no in-place update, no warm window): refused
    # at validation, so never asked; tests/test_layout.py checks the two agree.
    REFUSED = frozenset({"prepare_blue_green", "blue_green_prepared", "blue_green_switchable", "scale_preview",
                         "shift_traffic", "switch_active", "complete_blue_green", "abort_blue_green",
                         "roll_out", "undo", "open_window", "switch_to_warm", "close_window"})

    def __init__(self, spec: RolloutSpecBody, rollout_id: str) -> None:
        self.spec, self.rollout_id = spec, rollout_id
        self.target: KubernetesTarget = spec.target.kubernetes
        self.rules = self.target.in_place
        self.options = options.kubernetes(spec.progress_deadline_seconds)
        self.words = Wording(f"{self.rules.kind} {self.target.workload}", "", KubernetesTarget.INSTANCES,
                             f"every one of its {self.UNITS} on the new revision")

    def _start(self, activity: Any, summary: str, **more: Any) -> Any:
        hold = f"{self.rollout_id}@{workflow.info().first_execution_run_id}"  # the same across continue-as-new
        arg = WorkloadInput(rollout_id=self.rollout_id, target=self.target, image=self.spec.image, hold=hold,
                            progress_deadline_seconds=self.spec.progress_deadline_seconds, **more)
        return workflow.start_activity_method(activity, arg, summary=summary, **self.options)

    def revisions(self, shape: Literal["canary", "blueGreen", "inPlace"]):
        return None  # its pods carry controller-revision-hash, not a pod-template hash

    def prepare_canary(self, canary: CanaryStrategy):
        return self._start(self.PREPARE, "new image on the template, nothing moved yet")

    def set_routes(self, canary: CanaryStrategy, step: int, total: int, routes: RouteState,
                   canary_scale: SetCanaryScale | None, summary: str):
        updated = updated_ordinals(routes.weight, total)
        return self._start(self.MOVE, f"{summary}: {updated} of {total} {self.UNITS} on the new revision",
                           updated=updated, weight=routes.weight)

    def promote_canary(self, canary: CanaryStrategy, prepared: PrepareCanaryResult):
        return self._start(self.PROMOTE, f"every {self.UNITS[:-1]} on the new revision",
                           stable_image=prepared.stable_image, container=prepared.container)

    def abort_canary(self, canary: CanaryStrategy, prepared: PrepareCanaryResult):
        return self._start(self.ABORT, f"abort: the stable image back, {self.UNITS[:-1]} by {self.UNITS[:-1]}",
                           stable_image=prepared.stable_image, container=prepared.container)

    def __getattr__(self, name: str) -> Any:
        if name not in self.REFUSED:
            raise AttributeError(name)

        def refused(*args: Any, **kwargs: Any) -> Any:  # an undo or restart started anyway: the run fails, once
            raise ApplicationError(f"a {self.rules.kind} rolls only as a canary, in place: no {name} here",
                                   type="InvalidTarget", non_retryable=True)

        return refused


class StatefulSetDelivery(InPlaceDelivery):
    """A canary by its partition, the highest ordinals first."""

    PREPARE, MOVE, PROMOTE, ABORT = StatefulSetActivities.CANARY
    UNITS = "ordinals"


class DaemonSetDelivery(InPlaceDelivery):
    """A canary node by node, the `nodes.first` nodes first."""

    PREPARE, MOVE, PROMOTE, ABORT = DaemonSetActivities.CANARY
    UNITS = "nodes"
