"""`rollout undo` and `rollout restart`: put a Deployment back on an earlier revision's pod template
(from the ReplicaSet the Deployment kept — no rebuild, the same image and settings), or restart the
pods of the current version; both through the Deployment's own rolling update with the same readiness
gate, and undone when they fail, like a rolling update."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.kubernetes import RollOutInput
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

    def roll_out_input(self) -> RollOutInput:
        return RollOutInput(
            rollout_id=self.control.status.rollout_id,
            target=self.spec.target.kubernetes,
            image=self.spec.image,
            kind="Undo" if self.action == "undo" else "Restart",
            progress_deadline_seconds=self.spec.progress_deadline_seconds,
            to_revision=self.to_revision,
            restarted_at=workflow.info().start_time.isoformat(),
        )

    def describe(self, what: RollOutInput) -> str:
        if what.kind == "Restart":
            return "restart the pods of the current version"
        return f"undo to revision {what.to_revision}" if what.to_revision else "undo to the previous revision"

    @workflow.run
    async def run(self, request: RevisionInput) -> RolloutStatus:
        status = await self.roll_out()
        if status.stable_image:
            status.image = status.stable_image
        return await self.control.wrap_up(status)
