"""Rolling update: the target's own rolling update (on Kubernetes the Deployment's, maxSurge /
maxUnavailable), gated on readiness within the progress deadline; when it fails or is aborted, it is
undone to the previous revision. How is the delivery target's (workflows/targets/)."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from models.delivery import InPlaceUpdate, RollOutResult
    from models.status import Phase, Reason, RolloutInput, RolloutStatus
    from workflows.analysis import gate
    from workflows.control import RolloutControl, StatusQuery, failure_reason
    from workflows.errors import AnalysisFailed, RolloutAborted
    from workflows.handlers import Abort, Approve, Hold, Promote, SkipAnalysis, supported_by
    from workflows.targets import delivery_for


@workflow.defn(name="RollingUpdateRollout")
class RollingUpdateRollout(StatusQuery, Abort, Promote, Approve, Hold, SkipAnalysis):
    @workflow.init
    def __init__(self, request: RolloutInput) -> None:
        self.control = RolloutControl(request, supported_by(type(self)))
        self.rules = self.control.rules
        self.spec = self.control.rollout.spec
        self.target = delivery_for(self.spec, self.control.status.rollout_id)
        self.control.template_hash = self.target.revisions("inPlace")  # Latest: the current revision's

    def update(self) -> InPlaceUpdate:
        rolling = self.spec.strategy.rolling_update
        return InPlaceUpdate(kind="RollingUpdate", image=self.spec.image,
                             max_surge=rolling.max_surge if rolling else None,
                             max_unavailable=rolling.max_unavailable if rolling else None)

    @workflow.run
    async def run(self, request: RolloutInput) -> RolloutStatus:
        return await self.control.wrap_up(await self.roll_out())

    async def roll_out(self) -> RolloutStatus:
        spec = self.spec
        what = self.update()
        self.control.start(1)
        ended = await self.control.begin()
        if ended is not None:
            return ended
        self.control.start_step(0, what.describe())
        try:
            result: RollOutResult = await self.control.run_interruptible(self.target.roll_out(what, what.describe()))
        except RolloutAborted as aborted:
            return await self._undo(aborted.reason.value, str(aborted))
        except ActivityError as error:
            reason, message = failure_reason(error)
            if reason == Reason.TARGET_INVALID.value:
                return self.control.finish(Phase.DEGRADED, reason, message)  # nothing was changed
            return await self._undo(reason, message)
        rolling = spec.strategy.rolling_update
        if rolling is not None and rolling.analysis is not None and self.control.status.strategy == "rollingUpdate":
            try:
                await gate(self.control, 0, rolling.analysis)
            except AnalysisFailed as failed:
                return await self._undo(Reason.ANALYSIS_FAILED.value, str(failed))
            except RolloutAborted as aborted:
                return await self._undo(Reason.ABORTED.value, str(aborted))
        s = self.control.status
        image = result.image or spec.image
        s.stable_image, s.stable_replicas = image, result.replicas
        self.control.record("rolled-out", f"revision {result.previous_revision} → {result.revision}")
        return await self.control.healthy(f"{image} is stable (revision {result.revision})")

    async def _undo(self, reason: str, message: str) -> RolloutStatus:
        self.control.record("undoing", message)
        self.control.change_phase(Phase.PROGRESSING, reason, f"undoing: {message}")
        try:
            image = await self.target.undo()
        except ActivityError as error:
            _, undo_message = failure_reason(error)
            return self.control.finish(Phase.DEGRADED, Reason.UNDO_FAILED.value, f"{message}; undo failed: {undo_message}")
        self.control.status.stable_image = image
        self.control.record("undone", f"back on {image}")
        return self.control.finish(Phase.DEGRADED, reason, message)
