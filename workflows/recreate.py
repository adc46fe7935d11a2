"""Recreate: every old pod stops before any new one starts (versions that cannot run side by side);
the same readiness gate and automatic undo as the rolling update, through the target's own recreate
(on Kubernetes the Deployment's `Recreate` strategy)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.delivery import InPlaceUpdate
    from models.status import RolloutInput, RolloutStatus
    from workflows.rolling import RollingUpdateRollout


@workflow.defn(name="RecreateRollout")
class RecreateRollout(RollingUpdateRollout):
    @workflow.init
    def __init__(self, request: RolloutInput) -> None:
        super().__init__(request)

    def update(self) -> InPlaceUpdate:
        return super().update().model_copy(update={"kind": "Recreate"})

    @workflow.run
    async def run(self, request: RolloutInput) -> RolloutStatus:
        return await self.control.wrap_up(await self.roll_out())
