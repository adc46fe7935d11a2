"""The ECS target's `DeliveryTarget`: an ECS service (EXTERNAL deployment controller) behind an ALB. The
canary (and a blue-green's preview) is a second task set behind the other of the two target groups; its
share of traffic is the ALB forward action's weights, header routes are listener rules, the preview is
tested on the test listener; in-place updates are a new task set behind the primary's own target group
(activities/targets/ecs/); the rollback window keeps the revision before the primary's warm behind the
spare target group."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from models.delivery import (
        InPlaceUpdate,
        PrepareCanaryResult,
        RollOutResult,
        WarmRevision,
        WeightResult,
        Wording,
    )
    from models.ecs import (
        EcsRequest,
        EcsRollOutInput,
        EcsRoutesInput,
        EcsSideInput,
        EcsSwitchInput,
        EcsTarget,
        EcsWindowInput,
    )
    from models.routing import RouteState, SetCanaryScale
    from models.spec import CanaryStrategy, RolloutSpecBody
    from workflows import options
    from workflows.targets.switching import SwitchingDelivery


class EcsDelivery(SwitchingDelivery):
    capabilities = EcsTarget.CAPABILITIES
    NAME, REQUEST, SWITCH = "ecs", EcsRequest, EcsSwitchInput
    SUMMARIES = {"prepare": "prepare preview task set", "complete": "preview primary, old task set removed",
                 "abort": "remove preview task set"}

    def __init__(self, spec: RolloutSpecBody, rollout_id: str) -> None:
        self.spec, self.rollout_id = spec, rollout_id
        self.target: EcsTarget = spec.target.ecs
        self.options = options.delivery(spec.progress_deadline_seconds)
        self.words = Wording("the production listener", "the test listener", EcsTarget.INSTANCES,
                             "the preview task set becomes primary, the old one is removed")

    def revisions(self, shape: Literal["canary", "blueGreen", "inPlace"]):
        """valueFrom.targetGroupValue: role -> that side's target group (CloudWatch's TargetGroup dimension)."""
        async def read(role: str) -> str:
            return await workflow.execute_activity(
                "ecs_target_group", EcsSideInput(**self._request(), role=role, in_place=shape == "inPlace"),
                result_type=str, summary=f"{role} target group", start_to_close_timeout=timedelta(seconds=30),
                heartbeat_timeout=options.HEARTBEAT, retry_policy=RetryPolicy(
                    maximum_attempts=15, maximum_interval=timedelta(seconds=2), non_retryable_error_types=options.PERMANENT))

        return read

    # -- canary ------------------------------------------------------------------------------------------
    def prepare_canary(self, canary: CanaryStrategy):
        return self._start("prepare_ecs_canary", EcsRequest(**self._request()), "prepare canary task set",
                           PrepareCanaryResult)

    def set_routes(self, canary: CanaryStrategy, step: int, total: int, routes: RouteState,
                   canary_scale: SetCanaryScale | None, summary: str):
        return self._start("set_ecs_routes", EcsRoutesInput(**self._request(), step=step, total_replicas=total,
                                                            routes=routes, canary_scale=canary_scale),
                           summary, WeightResult)

    def promote_canary(self, canary: CanaryStrategy, prepared: PrepareCanaryResult):
        return self._start("promote_ecs_canary", EcsRequest(**self._request()), "promote: candidate task set primary")

    def abort_canary(self, canary: CanaryStrategy, prepared: PrepareCanaryResult):
        return self._start("abort_ecs_canary", EcsRequest(**self._request()), "abort: traffic back to the primary")

    # -- in place ----------------------------------------------------------------------------------------
    def roll_out(self, update: InPlaceUpdate, summary: str):
        return self._start("roll_out_ecs", EcsRollOutInput(**{**self._request(), **update.model_dump()}), summary,
                           RollOutResult)

    def undo(self):
        return self._start("undo_ecs", EcsRollOutInput(**self._request(), kind="Undo",
                                                       restarted_at=workflow.info().run_id),  # this run's own undo
                           "undo: back to the previous task set", str)

    # -- rollback window (one revision warm behind the spare target group) -------------------------------
    def open_window(self, service: str | None, revisions: int):
        return self._start("keep_ecs_warm", EcsWindowInput(**self._request()), "keep the previous revision warm",
                           list[WarmRevision])

    def switch_to_warm(self, revision: int):
        return self._start("switch_ecs_to_warm", EcsWindowInput(**self._request(), revision=revision),
                           f"production to warm revision {revision}")

    def close_window(self):
        return self._start("close_ecs_window", EcsWindowInput(**self._request()), "remove the warm task set")
