"""Canary: run the step list (setWeight through the spec's traffic router, timed or open pauses),
then promote the stable Deployment to the new image and remove the canary. An abort, a failed step
or a progress deadline sends all traffic back to stable and ends Degraded."""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.canary import CanaryActivities
    from models.durations import format_duration
    from models.kubernetes import (
        FinishInput,
        PrepareCanaryInput,
        PrepareCanaryResult,
        SetWeightInput,
    )
    from models.spec import CanaryStrategy
    from models.status import Phase, Reason, RolloutInput, RolloutStatus
    from workflows import options
    from workflows.control import RolloutAborted, RolloutControl, failure_reason


@workflow.defn(name="CanaryRollout")
class CanaryRollout(RolloutControl):
    @workflow.init
    def __init__(self, request: RolloutInput) -> None:
        super().__init__(request)

    @workflow.run
    async def run(self, request: RolloutInput) -> RolloutStatus:
        spec = self.rollout.spec
        canary = spec.strategy.canary
        assert canary is not None
        kube = options.kubernetes(spec.progress_deadline_seconds)
        self.start(len(canary.steps))
        try:
            prepared: PrepareCanaryResult = await workflow.execute_activity_method(
                CanaryActivities.prepare_canary,
                PrepareCanaryInput(
                    rollout_id=self.status.rollout_id,
                    target=spec.target.kubernetes,
                    image=spec.image,
                    stable_service=canary.stable_service,
                    canary_service=canary.canary_service,
                    progress_deadline_seconds=spec.progress_deadline_seconds,
                ),
                summary="prepare canary",
                **kube,
            )
        except ActivityError as error:
            reason, message = failure_reason(error)
            return self.finish(Phase.DEGRADED, reason, message)
        self.status.stable_image = prepared.stable_image
        self.status.stable_replicas = prepared.total_replicas
        finish = FinishInput(
            rollout_id=self.status.rollout_id,
            target=spec.target.kubernetes,
            container=prepared.container,
            image=spec.image,
            total_replicas=prepared.total_replicas,
            progress_deadline_seconds=spec.progress_deadline_seconds,
        )
        try:
            for index, step in enumerate(canary.steps):
                if self.abort_requested:
                    raise RolloutAborted(self.abort_requested.reason)
                if step.set_weight is not None:
                    await self._set_weight(index, step.set_weight, prepared.total_replicas, canary, kube)
                else:
                    duration = step.pause.duration if step.pause else None
                    what = f"pause {format_duration(duration)}" if duration is not None else "pause until promoted"
                    self.start_step(index, what)
                    await self.pause(index, duration)
        except RolloutAborted as aborted:
            return await self._roll_back(finish, Reason.ABORTED.value, str(aborted), kube)
        except ActivityError as error:
            reason, message = failure_reason(error)
            return await self._roll_back(finish, reason, message, kube)

        self.set_phase(Phase.PROGRESSING, message="promoting: stable takes the new image")
        try:
            await workflow.execute_activity_method(
                CanaryActivities.promote_canary, finish, summary="promote stable to new image", **kube
            )
        except ActivityError as error:
            reason, message = failure_reason(error)
            return await self._roll_back(finish, reason, message, kube)
        self.status.canary_weight, self.status.actual_weight = 100, 100.0
        self.status.canary_replicas, self.status.stable_replicas = 0, prepared.total_replicas
        self.status.stable_image = spec.image
        return self.finish(Phase.HEALTHY, message=f"{spec.image} is stable")

    async def _set_weight(
        self, index: int, weight: int, total: int, canary: CanaryStrategy, kube: dict[str, Any]
    ) -> None:
        self.start_step(index, f"setWeight {weight}")
        handle = workflow.start_activity_method(
            CanaryActivities.set_canary_weight,
            SetWeightInput(
                rollout_id=self.status.rollout_id,
                target=self.rollout.spec.target.kubernetes,
                router=canary.traffic_routing.router,
                weight=weight,
                step=index,
                total_replicas=total,
                progress_deadline_seconds=self.rollout.spec.progress_deadline_seconds,
            ),
            summary=f"set weight {weight}%",
            **kube,
        )
        result = await self.run_interruptible(handle)
        s = self.status
        s.canary_weight, s.actual_weight = result.weight, result.actual_weight
        s.canary_replicas, s.stable_replicas = result.canary_replicas, result.stable_replicas
        self.record("weight-set", f"{weight}% ({result.canary_replicas} canary / {result.stable_replicas} stable)")

    async def _roll_back(self, finish: FinishInput, reason: str, message: str, kube: dict[str, Any]) -> RolloutStatus:
        self.record("aborting", message)
        self.set_phase(Phase.PROGRESSING, reason, f"aborting: {message}; sending all traffic back to stable")
        try:
            await workflow.execute_activity_method(
                CanaryActivities.abort_canary, finish, summary="abort: traffic back to stable", **kube
            )
        except ActivityError as error:
            _, abort_message = failure_reason(error)
            return self.finish(Phase.DEGRADED, "AbortFailed", f"{message}; abort failed: {abort_message}")
        s = self.status
        s.canary_weight, s.actual_weight, s.canary_replicas = 0, 0.0, 0
        s.stable_replicas = finish.total_replicas
        return self.finish(Phase.DEGRADED, reason, message)
