"""Rollback window: after a Healthy rollout, the previous revisions stay warm (running, serving nothing)
for `spec.rollbackWindow.duration`. `rollout undo ID [--to-revision N]` (the `undo` update, or the
`abort` signal from the Web UI) switches the Service to a warm copy at once, then puts the Deployment
back on that revision and restores the Service; `promote` (or the end of the window) removes the copies.
Started by each strategy when it ends Healthy, as its own workflow `<rollout ID>/window`."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.targets.kubernetes.rolling import DeploymentActivities
    from activities.targets.kubernetes.window import WindowActivities
    from models.durations import format_duration
    from models.kubernetes import RollOutInput, WarmRevision, WindowInput
    from models.status import AbortRequest, ControlResult, Phase, Reason, RolloutStatus, UndoRequest, WindowRunInput
    from workflows import options
    from workflows.control import RolloutControl, StatusQuery, failure_reason
    from workflows.errors import RolloutAborted
    from workflows.handlers import Abort, Promote, supported_by


@workflow.defn(name="RollbackWindow")
class RollbackWindow(StatusQuery, Abort, Promote):
    @workflow.init
    def __init__(self, request: WindowRunInput) -> None:
        self.control = RolloutControl(request, supported_by(type(self)))
        self.rules = self.control.rules
        self.spec = self.control.rollout.spec
        spec = self.spec
        assert spec.rollback_window is not None and spec.service is not None
        self.window = spec.rollback_window
        self.control.status.strategy = "rollbackWindow"
        self.warm: list[WarmRevision] = []
        self.undo_to = 0
        self.input = WindowInput(
            rollout_id=self.control.status.rollout_id, target=spec.target.kubernetes, service=spec.service,
            revisions=self.window.revisions, progress_deadline_seconds=spec.progress_deadline_seconds,
        )
        self.kube = options.kubernetes(spec.progress_deadline_seconds)

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
            self.warm = await workflow.execute_activity_method(
                WindowActivities.keep_warm, self.input, summary="keep previous revisions warm", **self.kube
            )
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
            await workflow.execute_activity_method(
                WindowActivities.switch_to_warm, self.input.model_copy(update={"revision": revision}),
                summary=f"service to warm revision {revision}", **self.kube,
            )
            self.control.record("switched-back", f"{self.input.service} → warm r{revision} ({image})")
            spec = self.spec
            await workflow.execute_activity_method(
                DeploymentActivities.roll_out_deployment,
                RollOutInput(rollout_id=self.control.status.rollout_id, target=spec.target.kubernetes, image=image, kind="Undo",
                             to_revision=revision, progress_deadline_seconds=spec.progress_deadline_seconds),
                summary=f"deployment back on revision {revision}", **self.kube,
            )
        except ActivityError as error:
            _, message = failure_reason(error)
            return self.control.finish(Phase.DEGRADED, Reason.UNDO_FAILED.value, f"{message} (the Service may still select the warm copy)")
        self.control.status.image = self.control.status.stable_image = image
        return await self._close(Phase.HEALTHY, Reason.ROLLED_BACK.value, f"back on revision {revision} ({image})")

    async def _close(self, phase: Phase, reason: str, message: str) -> RolloutStatus:
        self.control.start_step(2, "close the window: remove the warm copies")
        try:
            await workflow.execute_activity_method(
                WindowActivities.close_window, self.input, summary="remove warm copies", **self.kube
            )
        except ActivityError as error:
            _, close_message = failure_reason(error)
            return self.control.finish(Phase.DEGRADED, Reason.WINDOW_CLOSE_FAILED.value, f"{message}; {close_message}")
        return self.control.finish(phase, reason, message)
