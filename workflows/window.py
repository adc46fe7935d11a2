"""Rollback window: after a Healthy rollout, the previous revisions stay warm (running, serving nothing)
for `spec.rollbackWindow.duration`. `rollout undo ID [--to-revision N]` (the `undo` update, or the
`abort` signal from the Web UI) switches the Service to a warm copy at once, then puts the Deployment
back on that revision and restores the Service; `promote` (or the end of the window) removes the copies.
Started by each strategy when it ends Healthy, as its own workflow `<rollout ID>/window`."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from models.delivery import InPlaceUpdate, WarmRevision
    from models.durations import format_duration
    from models.status import AbortRequest, ControlResult, Phase, Reason, RolloutStatus, UndoRequest, WindowRunInput
    from workflows.control import RolloutControl, StatusQuery, failure_reason
    from workflows.errors import RolloutAborted
    from workflows.handlers import Abort, Promote, supported_by
    from workflows.targets import delivery_for


@workflow.defn(name="RollbackWindow")
class RollbackWindow(StatusQuery, Abort, Promote):
    @workflow.init
    def __init__(self, request: WindowRunInput) -> None:
        self.control = RolloutControl(request, supported_by(type(self)))
        self.rules = self.control.rules
        self.spec = self.control.rollout.spec
        spec = self.spec
        assert spec.rollback_window is not None
        self.window = spec.rollback_window
        self.control.status.strategy = "rollbackWindow"
        self.warm: list[WarmRevision] = []
        self.undo_to = 0
        self.target = delivery_for(spec, self.control.status.rollout_id)

    @workflow.update(name="undo")
    async def undo(self, request: UndoRequest) -> ControlResult:
        self.undo_to = request.to_revision or self.warm[0].revision
        self.control.accept_abort(AbortRequest(reason=f"undo to revision {self.undo_to}", by=request.by))
        return self.control.result(f"switching back to revision {self.undo_to}")

    @undo.validator
    def _validate_undo(self, request: UndoRequest) -> None:
        if not self.warm or self.control.status.current_step != 1:
            raise ValueError("the rollback window is not open (nothing is warm yet, or it is closing)")
        kept = [w.revision for w in self.warm]
        if request.to_revision and request.to_revision not in kept:
            raise ValueError(f"revision {request.to_revision} is not warm (warm: {', '.join(map(str, kept))})")
        problem = self.rules.decision_problem("abort", AbortRequest(reason="rollout undo", by=request.by or "rollout undo"))
        if problem:
            raise ValueError(problem)

    @workflow.run
    async def run(self, request: WindowRunInput) -> RolloutStatus:
        self.control.start(3)
        self.control.start_step(0, f"keep the previous {self.window.revisions} revision(s) warm")
        try:
            self.warm = await self.target.open_window(self.spec.service, self.window.revisions)
        except ActivityError as error:
            return await self._close(Phase.DEGRADED, *failure_reason(error))
        if not self.warm:
            return await self._close(Phase.HEALTHY, "", "no earlier revision to keep warm")
        listed = ", ".join(f"r{w.revision} {w.image}" for w in self.warm)
        self.control.record("warm", listed)
        self.control.start_step(1, f"rollback window {format_duration(self.window.duration)}")
        try:
            await self.control.pause(1, self.window.duration,
                             what=f"warm: {listed}. `rollout undo {self.control.status.rollout_id}` switches back at once; "
                                  "promote closes the window")
        except RolloutAborted:
            return await self._switch_back()
        return await self._close(Phase.HEALTHY, "", "rollback window closed")

    async def _switch_back(self) -> RolloutStatus:
        revision = self.undo_to or self.warm[0].revision
        image = next(w.image for w in self.warm if w.revision == revision)
        self.control.pending.abort_closed = "already switching back"
        self.control.start_step(2, f"switch back to revision {revision} ({image})")
        try:
            await self.target.switch_to_warm(revision)
            self.control.record("switched-back", f"{self.spec.service or self.target.words.production} → warm r{revision} "
                                                 f"({image})")
            await self.target.roll_out(InPlaceUpdate(kind="Undo", image=image, to_revision=revision),
                                       f"deployment back on revision {revision}")
        except ActivityError as error:
            _, message = failure_reason(error)
            return self.control.finish(Phase.DEGRADED, Reason.UNDO_FAILED.value, f"{message} (the Service may still select the warm copy)")
        self.control.status.image = self.control.status.stable_image = image
        return await self._close(Phase.HEALTHY, Reason.ROLLED_BACK.value, f"back on revision {revision} ({image})")

    async def _close(self, phase: Phase, reason: str, message: str) -> RolloutStatus:
        self.control.start_step(2, "close the window: remove the warm copies")
        try:
            await self.target.close_window()
        except ActivityError as error:
            _, close_message = failure_reason(error)
            return self.control.finish(Phase.DEGRADED, Reason.WINDOW_CLOSE_FAILED.value, f"{message}; {close_message}")
        return self.control.finish(phase, reason, message)
