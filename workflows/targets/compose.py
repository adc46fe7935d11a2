"""The composeHost target's `DeliveryTarget`: a Compose project's service on one Docker host. In place only
so far (rollingUpdate, recreate, undo, restart: activities/targets/compose/inplace.py); its record refuses
the strategies it cannot run yet (models/compose.py), so the exposure-shifting calls are never reached."""

from __future__ import annotations

from typing import Any, Literal

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from models.compose import ComposeHostTarget, ComposeRollOutInput
    from models.delivery import InPlaceUpdate, RollOutResult, Wording
    from models.spec import RolloutSpecBody
    from workflows import options


class ComposeDelivery:
    capabilities = ComposeHostTarget.CAPABILITIES

    def __init__(self, spec: RolloutSpecBody, rollout_id: str) -> None:
        self.spec, self.rollout_id = spec, rollout_id
        self.target: ComposeHostTarget = spec.target.compose_host
        self.options = options.delivery(spec.progress_deadline_seconds)
        self.words = Wording("the service's network alias", "", ComposeHostTarget.INSTANCES, "")

    def _input(self, **fields: Any) -> ComposeRollOutInput:
        return ComposeRollOutInput(rollout_id=self.rollout_id, target=self.target, image=self.spec.image,
                                   progress_deadline_seconds=self.spec.progress_deadline_seconds, **fields)

    def revisions(self, shape: Literal["canary", "blueGreen", "inPlace"]):
        return None  # no analysis arg names a side by valueFrom on this target

    def roll_out(self, update: InPlaceUpdate, summary: str):
        fields = update.model_dump(exclude={"image"})
        return workflow.start_activity("roll_out_compose", self._input(**fields), result_type=RollOutResult,
                                       summary=summary, **self.options)

    def undo(self):
        return workflow.start_activity("undo_compose", self._input(kind="Undo", restarted_at=workflow.info().run_id),
                                       result_type=str, summary="undo: back to the previous configuration",
                                       **self.options)

    def _not_here(self, *_: Any, **__: Any):
        raise ApplicationError(f"{self.target.describe()}: this target rolls in place only (validation refuses the "
                               "rest)", type="InvalidTarget", non_retryable=True)

    prepare_canary = set_routes = promote_canary = abort_canary = _not_here
    prepare_blue_green = scale_preview = shift_traffic = switch_active = _not_here
    complete_blue_green = abort_blue_green = open_window = switch_to_warm = close_window = _not_here

    def blue_green_prepared(self, prepared: Any) -> None:
        self._not_here()

    @property
    def blue_green_switchable(self) -> bool:
        return False
