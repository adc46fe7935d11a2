"""Rolling update: the Deployment's own rolling update (maxSurge / maxUnavailable), gated on readiness
within the progress deadline; when it fails or is aborted, it is undone to the previous revision."""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.targets.kubernetes.rolling import DeploymentActivities
    from models.kubernetes import RollOutInput, RollOutResult, UndoInput
    from models.status import Phase, Reason, RolloutInput, RolloutStatus
    from workflows import options
    from workflows.analysis import gate
    from workflows.control import RolloutControl, StatusQuery, failure_reason
    from workflows.errors import AnalysisFailed, RolloutAborted
    from workflows.handlers import Abort, Approve, Hold, Promote, SkipAnalysis, supported_by
    from workflows.observe import template_hashes


@workflow.defn(name="RollingUpdateRollout")
class RollingUpdateRollout(StatusQuery, Abort, Promote, Approve, Hold, SkipAnalysis):
    @workflow.init
    def __init__(self, request: RolloutInput) -> None:
        self.control = RolloutControl(request, supported_by(type(self)))
        self.rules = self.control.rules
        self.spec = self.control.rollout.spec
        t = self.spec.target.kubernetes  # valueFrom.podTemplateHashValue: Latest the Deployment's current revision
        self.control.template_hash = template_hashes(t, t.deployment, None) if t is not None else None

    def roll_out_input(self) -> RollOutInput:
        spec = self.spec
        rolling = spec.strategy.rolling_update
        return RollOutInput(
            rollout_id=self.control.status.rollout_id,
            target=spec.target.kubernetes,
            image=spec.image,
            kind="RollingUpdate",
            max_surge=rolling.max_surge if rolling else None,
            max_unavailable=rolling.max_unavailable if rolling else None,
            progress_deadline_seconds=spec.progress_deadline_seconds,
        )

    def describe(self, what: RollOutInput) -> str:
        return f"{what.kind} to {what.image}"

    @workflow.run
    async def run(self, request: RolloutInput) -> RolloutStatus:
        return await self.control.wrap_up(await self.roll_out())

    async def roll_out(self) -> RolloutStatus:
        spec = self.spec
        kube = options.kubernetes(spec.progress_deadline_seconds)
        what = self.roll_out_input()
        self.control.start(1)
        ended = await self.control.begin()
        if ended is not None:
            return ended
        self.control.start_step(0, self.describe(what))
        handle = workflow.start_activity_method(
            DeploymentActivities.roll_out_deployment, what, summary=self.describe(what), **kube
        )
        try:
            result: RollOutResult = await self.control.run_interruptible(handle)
        except RolloutAborted as aborted:
            return await self._undo(aborted.reason.value, str(aborted), kube)
        except ActivityError as error:
            reason, message = failure_reason(error)
            if reason == Reason.TARGET_INVALID.value:
                return self.control.finish(Phase.DEGRADED, reason, message)  # nothing was changed
            return await self._undo(reason, message, kube)
        rolling = spec.strategy.rolling_update
        if rolling is not None and rolling.analysis is not None and self.control.status.strategy == "rollingUpdate":
            try:
                await gate(self.control, 0, rolling.analysis)
            except AnalysisFailed as failed:
                return await self._undo(Reason.ANALYSIS_FAILED.value, str(failed), kube)
            except RolloutAborted as aborted:
                return await self._undo(Reason.ABORTED.value, str(aborted), kube)
        s = self.control.status
        image = result.image or spec.image
        s.stable_image, s.stable_replicas = image, result.replicas
        self.control.record("rolled-out", f"revision {result.previous_revision} → {result.revision}")
        return await self.control.healthy(f"{image} is stable (revision {result.revision})")

    async def _undo(self, reason: str, message: str, kube: dict[str, Any]) -> RolloutStatus:
        self.control.record("undoing", message)
        self.control.change_phase(Phase.PROGRESSING, reason, f"undoing: {message}")
        undo = UndoInput(
            rollout_id=self.control.status.rollout_id,
            target=self.spec.target.kubernetes,
            progress_deadline_seconds=self.spec.progress_deadline_seconds,
        )
        try:
            image = await workflow.execute_activity_method(
                DeploymentActivities.undo_deployment, undo, summary="undo to the previous revision", **kube
            )
        except ActivityError as error:
            _, undo_message = failure_reason(error)
            return self.control.finish(Phase.DEGRADED, Reason.UNDO_FAILED.value, f"{message}; undo failed: {undo_message}")
        self.control.status.stable_image = image
        self.control.record("undone", f"back on {image}")
        return self.control.finish(Phase.DEGRADED, reason, message)
