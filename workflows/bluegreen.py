"""Blue-green: the new version starts beside the old one behind the preview Service; promotion (by
hand, or automatic, optionally after a delay) switches the active Service to it in one update; the
old version stays warm for `scaleDownDelaySeconds`, during which an abort switches back instantly.
Then the new version is handed back to the target (on Kubernetes: its Deployment) and the preview
removed. How each step is done is the delivery target's (workflows/targets/)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from models.delivery import BlueGreenPrepared
    from models.durations import format_duration
    from models.spec import BlueGreenStrategy
    from models.status import Phase, Reason, RolloutInput, RolloutStatus
    from workflows.analysis import gate
    from workflows.approval import await_approval
    from workflows.control import RolloutControl, StatusQuery, failure_reason
    from workflows.errors import AnalysisFailed, RolloutAborted
    from workflows.handlers import Abort, Approve, Hold, Promote, SkipAnalysis, supported_by
    from workflows.targets import delivery_for

SHIFT_GATED = "gradual-shift-weights-are-step-boundaries"  # workflow.patched: runs before it shifted on regardless
STEPS = ("deploy preview", "promotion", "switch active to preview", "keep previous version warm", "complete")


@workflow.defn(name="BlueGreenRollout")
class BlueGreenRollout(StatusQuery, Abort, Promote, Approve, Hold, SkipAnalysis):
    @workflow.init
    def __init__(self, request: RolloutInput) -> None:
        self.control = RolloutControl(request, supported_by(type(self)))
        self.rules = self.control.rules
        self.spec = self.control.rollout.spec
        spec = self.spec
        assert spec.strategy.blue_green is not None
        self.blue_green: BlueGreenStrategy = spec.strategy.blue_green
        self.switched = False
        self.target = delivery_for(spec, self.control.status.rollout_id)
        self.words = self.target.words  # what the texts below call the two sides and the instances
        self.control.template_hash = self.target.revisions("blueGreen")  # Latest the preview's, Stable the active's

    async def _call(self, handle: Any) -> Any:
        """One blue-green step of the target, abort-aware."""
        return await self.control.run_interruptible(handle)

    @workflow.run
    async def run(self, request: RolloutInput) -> RolloutStatus:
        return await self.control.wrap_up(await self._run())

    async def _run(self) -> RolloutStatus:
        bg, s = self.blue_green, self.control.status
        self.control.start(len(STEPS))
        self.control.approval_steps = [1] if bg.approval else []
        ended = await self.control.begin()
        if ended is not None:
            return ended
        try:
            self.control.start_step(0, "deploy preview")
            prepared: BlueGreenPrepared = await self._call(self.target.prepare_blue_green(self.blue_green))
        except RolloutAborted as aborted:
            return await self._roll_back(aborted.reason.value, str(aborted))
        except ActivityError as error:
            reason, message = failure_reason(error)
            if reason == Reason.TARGET_INVALID.value:
                return self.control.finish(Phase.DEGRADED, reason, message)  # nothing was changed
            return await self._roll_back(reason, message)
        self.target.blue_green_prepared(prepared)
        s.stable_image, s.stable_replicas = prepared.stable_image, prepared.total_replicas
        try:
            preview = min(bg.preview_replica_count or prepared.total_replicas, prepared.total_replicas)
            self.control.start_step(0, f"deploy preview: {preview} {self.words.instances} of {self.spec.image}")
            s.canary_replicas = await self._call(self.target.scale_preview(preview))
            self.control.record("preview-ready", f"{s.canary_replicas} {self.words.instances} behind {self.words.preview}")
            await self._promotion()
            if bg.pre_promotion_analysis is not None:
                await gate(self.control, 1, bg.pre_promotion_analysis)
            await self._gradual_shift()
            self.control.start_step(2, f"switch {self.words.production} to the new version")
            await self._call(self.target.switch_active("preview", "switch active to preview"))
            self.switched = True
            s.expose(100, 100.0)
            s.canary_replicas = prepared.total_replicas
            self.control.record("switched", f"{self.words.production} → preview {self.words.instances} ({self.spec.image})")
            if bg.post_promotion_analysis is not None:  # the old version is still warm: Failed switches back
                await gate(self.control, 3, bg.post_promotion_analysis)
            if bg.scale_down_delay_seconds:
                self.control.start_step(3, f"keep the previous version warm for {bg.scale_down_delay_seconds}s")
                await self.control.pause(3, timedelta(seconds=bg.scale_down_delay_seconds),
                                 what=f"previous version kept warm for {bg.scale_down_delay_seconds}s: "
                                      "abort switches back at once; promote completes now")
        except AnalysisFailed as failed:
            return await self._roll_back(Reason.ANALYSIS_FAILED.value, str(failed))
        except RolloutAborted as aborted:
            return await self._roll_back(aborted.reason.value, str(aborted))
        except ActivityError as error:
            return await self._roll_back(*failure_reason(error))

        self.control.pending.abort_closed = "the previous version is no longer kept warm (completing); start a new rollout"
        self.control.start_step(4, f"complete: {self.words.completion}")
        try:
            await self._call(self.target.complete_blue_green())
        except ActivityError as error:
            reason, message = failure_reason(error)
            return self.control.finish(Phase.DEGRADED, reason, f"{message} ({self.words.production} still serves the new version)")
        s.stable_image, s.stable_replicas, s.canary_replicas = self.spec.image, prepared.total_replicas, 0
        return await self.control.healthy(f"{self.spec.image} is active")

    async def _promotion(self) -> None:
        bg = self.blue_green
        await self.control.step_gate(1)
        if bg.approval is not None:
            self.control.start_step(1, "approval")
            await await_approval(self.control, 1, bg.approval, bg.approval.description or f"promote the preview on {self.words.preview}")
        elif not bg.auto_promotion_enabled:
            self.control.start_step(1, "wait for promote")
            await self.control.pause(1, None, what=f"preview ready on {self.words.preview}: waiting for promote")
        elif bg.auto_promotion_seconds:
            self.control.start_step(1, f"auto-promote after {bg.auto_promotion_seconds}s")
            await self.control.pause(1, timedelta(seconds=bg.auto_promotion_seconds),
                             what=f"preview ready on {self.words.preview}: promoting in {bg.auto_promotion_seconds}s")
        else:
            self.control.start_step(1, "auto-promote")

    async def _gradual_shift(self) -> None:
        """Instead of a hard switch: the preview's share rises through the router, held at each weight.
        Each rise is a step boundary: `rollout pause` keeps the weight it has, and the execution
        windows are respected."""
        shift = self.blue_green.gradual_shift
        if shift is None:
            return
        for number, weight in enumerate(shift.weights):
            if number and workflow.patched(SHIFT_GATED):  # `rollout pause` holds the current weight
                await self.control.step_gate(2)
            self.control.start_step(2, f"shift {weight}% of traffic to the new version")
            await self._call(self.target.shift_traffic(weight))
            self.control.status.expose(weight, float(weight))
            self.control.record("shifted", f"{weight}% to {self.words.preview}")
            if number < len(shift.weights) - 1:
                await self.control.pause(2, shift.hold, what=f"{weight}% on the new version: holding {format_duration(shift.hold)}")

    async def _roll_back(self, reason: str, message: str) -> RolloutStatus:
        """Active back on the previous version first (instant while it is warm), keep the preview for
        `abortScaleDownDelaySeconds`, then remove it."""
        s, bg = self.control.status, self.blue_green
        self.control.record("aborting", message)
        self.control.change_phase(Phase.PROGRESSING, reason, f"aborting: {message}; switching {self.words.production} back")
        try:
            if self.target.blue_green_switchable:
                await self.target.switch_active("stable", "switch active back to the previous version")
                if self.switched or s.canary_weight:
                    self.control.record("switched-back", f"{self.words.production} → previous {self.words.instances}")
                s.expose(0, 0.0)
            if bg.abort_scale_down_delay_seconds:
                self.control.change_phase(Phase.PROGRESSING, reason,
                               f"aborted: preview kept for {bg.abort_scale_down_delay_seconds}s before removal")
                await workflow.sleep(timedelta(seconds=bg.abort_scale_down_delay_seconds), summary="abort scale-down delay")
            await self.target.abort_blue_green()
        except ActivityError as error:
            _, abort_message = failure_reason(error)
            return self.control.finish(Phase.DEGRADED, Reason.ABORT_FAILED.value, f"{message}; abort failed: {abort_message}")
        s.canary_replicas = 0
        return self.control.finish(Phase.DEGRADED, reason, message)
