"""`rollout undo` and `rollout restart`: put a Deployment back on an earlier revision's pod template
(from the ReplicaSet the Deployment kept — no rebuild, the same image and settings), or restart the
pods of the current version; both through the Deployment's own rolling update with the same readiness
gate, and undone when they fail, like a rolling update."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.delivery import InPlaceUpdate
    from models.status import RevisionInput, RolloutStatus
    from workflows.rolling import RollingUpdateRollout


@workflow.defn(name="RevisionRollout")
class RevisionRollout(RollingUpdateRollout):
    @workflow.init
    def __init__(self, request: RevisionInput) -> None:
        super().__init__(request)
        self.action, self.to_revision = request.action, request.to_revision
        self.control.status.strategy = request.action
        if request.action == "undo":
            self.control.status.image = f"revision {request.to_revision}" if request.to_revision else "previous revision"

    def update(self) -> InPlaceUpdate:
        return InPlaceUpdate(kind="Undo" if self.action == "undo" else "Restart", image=self.spec.image,
                             to_revision=self.to_revision, restarted_at=workflow.info().start_time.isoformat())

    @workflow.run
    async def run(self, request: RevisionInput) -> RolloutStatus:
        status = await self.roll_out()
        if status.stable_image:
            status.image = status.stable_image
        return await self.control.wrap_up(status)
