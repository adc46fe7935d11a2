"""`Pipeline`: one release bundle through ordered stages (dev → staging → prod), each stage a Rollout
template run on its targets in waves (workflows/waves.py), with a gate before a stage
(workflows/gates.py). The bundle is pinned first — every tag resolved to its digest by one activity,
once; the digests are in the status and every target runs exactly them.

The pipeline is a rollout to the control plane: its steps are the gates and the waves in order, so the
same decisions (approve/reject, promote, abort, pause/resume; each an update and a signal), the status
query, the Web UI's details and the search attributes (`RolloutKind=Pipeline`) serve it. The status
carries the tree — stage → wave → target, each target's rollout ID, phase and the revision it was
verified on — which `rollout status` draws, with each running target's own step.

`pause` holds the pipeline before its next step and before each target it would start (the running
targets go on to their verdict); `abort` aborts the running targets through their own abort path and
ends Degraded once they are back.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.registry import RegistryActivities
    from models.pipeline import BundleInput, PipelineInput, PipelineTree, StageState, TargetState, WaveState
    from models.status import Phase, RolloutStatus
    from workflows import options
    from workflows.control import RolloutControl, StatusQuery, failure_reason
    from workflows.errors import RolloutAborted, StageFailed
    from workflows.gates import Gates
    from workflows.handlers import Abort, Approve, Hold, Promote, supported_by
    from workflows.waves import Waves

RECHECK = "pipeline-recheck-verified-targets"  # workflow.patched: runs recorded before trusted a verified target
# workflow.patched, decided once per run before anything is started: runs recorded before named each target's
# rollout after the stage's template (two pipelines sharing a template shared workflow IDs)
CHILDREN_NAMED = "pipeline-children-named-by-pipeline"
RESOLVE = {"start_to_close_timeout": timedelta(minutes=2), "heartbeat_timeout": timedelta(seconds=30),
           "retry_policy": RetryPolicy(maximum_attempts=5, non_retryable_error_types=options.PERMANENT)}


@workflow.defn(name="Pipeline")
class PipelineRun(StatusQuery, Abort, Promote, Approve, Hold):
    @workflow.init
    def __init__(self, request: PipelineInput) -> None:
        self.control = RolloutControl(request, supported_by(type(self)))
        self.rules = self.control.rules
        self.pipeline = request.pipeline
        self.spec = request.pipeline.spec
        self.control.status.pipeline = PipelineTree(stages=[
            StageState(name=stage.name, waves=[
                WaveState(name=wave.name or f"wave {w + 1}",
                          targets=[TargetState(key=t.key, context=t.context or "", region=t.region) for t in wave.targets])
                for w, wave in enumerate(stage.waves)])
            for stage in self.spec.stages])
        self.waves = Waves(self.control, self.pipeline.rollout_id, request.requested_by)
        self.gates = Gates(self.control, self.waves)

    @workflow.run
    async def run(self, request: PipelineInput) -> RolloutStatus:
        return await self.control.wrap_up(await self.deliver())

    async def deliver(self) -> RolloutStatus:
        c, plan, tree = self.control, self.spec.plan(), self.control.status.pipeline
        if workflow.patched(CHILDREN_NAMED):
            self.waves.named_by = self.pipeline.rollout_id
        c.start(len(plan))
        ended = await c.begin()
        if ended is not None:
            return self._skip_rest(ended)
        try:
            pinned = await workflow.execute_activity_method(
                RegistryActivities.resolve_bundle, BundleInput(images=self.spec.bundle.images),
                summary=f"pin {', '.join(self.spec.bundle.images.values())} to digests", **RESOLVE)
        except ActivityError as error:
            reason, message = failure_reason(error)
            return self._skip_rest(c.finish(Phase.DEGRADED, reason, f"the bundle could not be pinned: {message}"))
        tree.bundle = pinned.images
        c.status.image = ", ".join(pinned.images.values())
        c.record("bundle-pinned", c.status.image)
        for stage, spec in zip(tree.stages, self.spec.stages, strict=True):
            stage.image = pinned.images[self.spec.image_of(spec)]
        try:
            for index, (kind, s, w) in enumerate(plan):
                stage = self.spec.stages[s]
                await c.hold_point()
                c.start_step(index, c.status.steps[index])
                image = tree.stages[s].image
                if kind == "gate":
                    before = self._rollouts_of(s - 1) if s > 0 else []
                    await self.gates.run(index, s, stage, before, image)
                else:
                    await self.waves.run(index, s, w, stage, image)
                if index + 1 == len(plan) or plan[index + 1][1] != s:
                    if workflow.patched(RECHECK):
                        await self.waves.recheck(s, stage, "read again when its stage ended")
                    tree.stages[s].state, tree.stages[s].verified_at = "verified", workflow.now()
                    c.record("stage-verified", f"{stage.name}: {image} on {len(stage.targets)} targets")
            if workflow.patched(RECHECK):
                for s, stage in enumerate(self.spec.stages[:-1]):  # the last one was read just now
                    await self.waves.recheck(s, stage, "read again before the pipeline ended")
        except StageFailed as failed:
            self._fail_current()
            return self._skip_rest(c.finish(Phase.DEGRADED, failed.reason.value, str(failed)))
        except RolloutAborted as aborted:
            self._fail_current()
            return self._skip_rest(c.finish(Phase.DEGRADED, aborted.reason.value, str(aborted)))
        except ActivityError as error:
            reason, message = failure_reason(error)
            self._fail_current()
            return self._skip_rest(c.finish(Phase.DEGRADED, reason, message))
        verified = sum(len(s.targets) for s in self.spec.stages)
        return await c.healthy(f"{c.status.image} verified on all {verified} targets of "
                               f"{' → '.join(s.name for s in self.spec.stages)}")

    def _rollouts_of(self, s: int) -> list:
        """The rollouts stage `s` ran (to read them again after a soak)."""
        stage, tree = self.spec.stages[s], self.control.status.pipeline
        return [stage.rollout_for(t, tree.stages[s].image, self.waves.named_by) for t in stage.targets]

    def _fail_current(self) -> None:
        """The stage of the current step marked failed, unless a stage read again was marked already."""
        s, plan = self.control.status, self.spec.plan()
        if s.current_step < len(plan) and not any(stage.state == "failed" for stage in s.pipeline.stages):
            s.pipeline.stages[plan[s.current_step][1]].state = "failed"

    def _skip_rest(self, status: RolloutStatus) -> RolloutStatus:
        for stage in status.pipeline.stages:
            if stage.state == "pending":
                stage.state = "skipped"
            for wave in stage.waves:
                if wave.state == "pending":
                    wave.state = "skipped"
        return status
