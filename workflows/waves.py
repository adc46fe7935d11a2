"""A pipeline's waves: each target of a wave is its own rollout — a child workflow of the template's
strategy with a deterministic ID (`rollout/<environment>/<pipeline>-<stage>-<target>-<hash>`, the
template's environment, models/pipeline.py target_name — runs recorded before used the template's name
and no hash —, so `rollout
status`, `approve` and `abort` work on it like on any rollout) — in rounds of `maxParallel`: a round
starts together and completes whole before the next starts, so a failure in one round means no target
of a later round was touched.

A target counts as done only on evidence for the bundle's revision: its rollout ended Healthy on the
pinned image, and the target itself, read afterwards, runs that image settled. Health for any other
revision (an older one still running, a GitOps tool that put it back) fails the target, never passes it.

The children are started with parent-close policy ABANDON, deliberately: a rollout stopped mid-way by
its parent's termination would leave traffic split; abandoned, it finishes on its own. A pipeline's
*abort* reaches its running children through their normal abort path (a signal `abort`, the reason
naming the pipeline), and the pipeline waits until they have rolled back. `failFast` does the same to
the running targets of the stage; `onFailure: rollbackCompleted` then undoes the stage's verified
targets (`RevisionRollout`, undo to the revision before), newest first.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ChildWorkflowError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from models import names
    from models.approvals import AbortRequest
    from models.durations import format_duration
    from models.pipeline import Stage, Target, TargetState
    from models.spec import Rollout
    from models.status import Phase, Reason, RevisionInput, RolloutInput, RolloutStatus
    from models.targets import TargetObservation
    from workflows import options
    from workflows.approval import await_approval
    from workflows.control import RolloutControl, failure_reason
    from workflows.errors import StageFailed
    from workflows.observe import observe
    from workflows.strategies import ACTION_WORKFLOWS, STRATEGY_WORKFLOWS

OBSERVE = {"start_to_close_timeout": timedelta(seconds=30), "heartbeat_timeout": options.HEARTBEAT,
           "retry_policy": RetryPolicy(maximum_attempts=5, non_retryable_error_types=options.PERMANENT)}
# workflow.patched: a target's rollout (its undo, and the reads that verify it) run on its family's task queue,
# where the workers with that target's credentials are; runs recorded before ran them on the pipeline's queue.
FAMILY_QUEUES = "pipeline-targets-on-their-family-queue"


def family_queue(rollout: Rollout) -> dict[str, str]:
    """The task queue option for `rollout`'s target family (none for runs recorded before FAMILY_QUEUES)."""
    if not workflow.patched(FAMILY_QUEUES):
        return {}
    return {"task_queue": names.task_queue_for(workflow.info().task_queue, rollout.spec.target.family)}  # a pipeline
    # runs on the base queue (the Kubernetes family's)


class Waves:
    """Runs the waves of one pipeline run; keeps each target's state in the pipeline's status tree."""

    def __init__(self, control: RolloutControl, pipeline_id: str, started_by: str):
        self.control, self.pipeline_id, self.started_by = control, pipeline_id, started_by
        self.stop_reason = ""  # set when the stage stops starting targets (failFast, maxFailures)
        self.named_by: str | None = None  # the children are named after: the pipeline's ID; None: the template's name

    @property
    def tree(self):
        return self.control.status.pipeline

    async def run(self, index: int, s: int, w: int, stage: Stage, image: str) -> None:
        """Wave `w` of stage `s` (step `index`): bake after the wave before, a wave approval, then its
        targets; raises StageFailed once the stage's failure policy is spent (after its rollback)."""
        c, wave = self.control, stage.waves[w]
        state = self.tree.stages[s]
        if w > 0 and stage.bake:
            await c.pause(index, stage.bake, f"{stage.name}: baking {format_duration(stage.bake)} after wave {w}")
        if stage.approve == "wave" and stage.gate.approval is not None:
            await await_approval(c, index, stage.gate.approval, f"{stage.name} wave {w + 1}: "
                                 + ", ".join(t.context for t in wave.targets))
        state.state = "running"
        state.waves[w].state = "running"
        self.stop_reason = ""
        pairs = list(zip(wave.targets, state.waves[w].targets, strict=True))
        for start in range(0, len(pairs), wave.max_parallel):  # rounds of maxParallel, each awaited whole
            await c.hold_point()
            if self.stop_reason or c.pending.abort is not None:
                break
            await asyncio.gather(*(self._target(s, stage, target, ts, image)
                                   for target, ts in pairs[start:start + wave.max_parallel]))
        failed = [t for t in state.waves[w].targets if t.state == "failed"]
        if c.pending.abort is not None:
            state.waves[w].state = "failed"
            raise StageFailed(c.pending.abort.reason, Reason.ABORTED)
        if self.stop_reason:
            state.waves[w].state = "failed"
            await self._roll_back(s, stage, image)
            first = failed[0]
            raise StageFailed(f"stage {stage.name}: {first.context}: {first.reason}: {first.message}"
                              + self._rollback_note(s), Reason.TARGET_FAILED)
        state.waves[w].state = "done"

    async def _target(self, s: int, stage: Stage, target: Target, ts: TargetState, image: str) -> None:
        c = self.control
        try:
            rollout = stage.rollout_for(target, image, self.named_by)
            ts.workflow_id, ts.state, ts.started_at = rollout.rollout_id, "running", workflow.now()
            c.record("target-started", f"{stage.name}/{ts.key}: {rollout.rollout_id}")
            ended = await self._child(rollout)
            ts.phase, ts.reason, ts.message, ts.finished_at = ended.phase.value, ended.reason, ended.message, workflow.now()
            if ended.phase is not Phase.HEALTHY:
                if ended.reason == Reason.ABORTED.value and (self.stop_reason or c.pending.abort is not None):
                    ts.state = "aborted"  # stopped by the pipeline: not a failure of its own
                    c.record("target-aborted", f"{stage.name}/{ts.key}: {ts.message}")
                    return
                ts.state = "failed"
                self._failed(stage, s, ts)
                return
            seen = await self._observe(rollout)
            if ended.image != image or seen.version != image or not seen.ready:
                ts.state, ts.reason = "failed", Reason.STALE_REVISION.value
                ts.message = (f"healthy on {seen.version}" if seen.ready else f"runs {seen.version}, not settled "
                              f"({seen.detail})") + f", not the bundle's {image}: the wave does not count it"
                self._failed(stage, s, ts)
                return
            if seen.instances == 0 and not stage.allow_zero_replicas:
                ts.state, ts.reason = "failed", Reason.NO_PODS.value
                ts.message = (f"no pod of its current revision runs {image} ({seen.detail}): not verified "
                              "(allowZeroReplicas: true counts a target scaled to 0)")
                self._failed(stage, s, ts)
                return
            ts.state, ts.verified_revision, ts.verified_at = "verified", seen.version, workflow.now()
            c.record("target-verified", f"{stage.name}/{ts.key}: {seen.version} ({seen.detail})")
        except ActivityError as error:
            ts.state, ts.finished_at = "failed", workflow.now()
            ts.reason, ts.message = failure_reason(error)
            self._failed(stage, s, ts)

    async def _child(self, rollout: Rollout) -> RolloutStatus:
        """Run one target's rollout; an abort of the pipeline (or failFast) reaches it as its own abort."""
        c = self.control
        workflow_class = STRATEGY_WORKFLOWS[rollout.spec.strategy.name]
        try:
            handle = await workflow.start_child_workflow(
                workflow_class.run, RolloutInput(rollout=rollout, requested_by=f"{self.pipeline_id} ({self.started_by})",
                                                initiator=c.initiator, initiator_proven=c.status.initiator_proven),
                **names.start_options(rollout, pipeline=self.pipeline_id), **family_queue(rollout),
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                static_summary=f"{rollout.spec.strategy.name} {rollout.target_description} → {rollout.spec.image} "
                               f"({self.pipeline_id})")
        except WorkflowAlreadyStartedError:
            return _ended(rollout, Reason.FAILED, f"{rollout.rollout_id} is already running (not started by this "
                                                  "pipeline): wait for it or abort it")
        try:
            await workflow.wait_condition(
                lambda: handle.done() or c.pending.abort is not None or bool(self.stop_reason))
            if not handle.done():
                why = c.pending.abort.reason if c.pending.abort is not None else self.stop_reason
                await handle.signal("abort", AbortRequest(by=self.pipeline_id, reason=f"pipeline: {why}"))
            return await handle
        except ChildWorkflowError as error:
            return _ended(rollout, Reason.FAILED, str(error.cause or error))

    async def _observe(self, rollout: Rollout) -> TargetObservation:
        target = rollout.spec.target
        return await observe(target, f"verify {target.describe()} runs {rollout.spec.image}", **OBSERVE,
                             **family_queue(rollout))

    async def recheck(self, s: int, stage: Stage, when: str) -> None:
        """Every verified target of stage `s` read again, together: one that no longer runs the stage's image
        settled (put back, scaled away) fails the stage — verified is a state of the target now, not once."""
        state = self.tree.stages[s]
        verified = [(t, ts) for wave, ws in zip(stage.waves, state.waves, strict=True)
                    for t, ts in zip(wave.targets, ws.targets, strict=True) if ts.state == "verified"]
        seen = await asyncio.gather(*(self._observe(stage.rollout_for(t, state.image, self.named_by))
                                      for t, _ in verified))
        drifted = []
        for (_, ts), now in zip(verified, seen, strict=True):  # every drifted one marked before any rollback
            empty = now.instances == 0 and not stage.allow_zero_replicas
            if now.version != state.image or not now.ready or empty:
                reason = Reason.NO_PODS if empty and now.version == state.image and now.ready else Reason.STALE_REVISION
                ts.state, ts.reason = "failed", reason.value
                ts.message = (f"{when}, no pod of its current revision runs it ({now.detail})" if reason is Reason.NO_PODS
                              else f"{when}, it runs {now.version} ({now.detail}), not the bundle's {state.image}"
                              if now.version != state.image else f"{when}, it is not settled ({now.detail})")
                self.control.record("target-failed", f"{stage.name}/{ts.key}: {ts.reason}: {ts.message}")
                drifted.append((ts, reason))
        if drifted:
            state.state = "failed"  # this stage, whichever step the pipeline is at (the last read is after all)
            await self._roll_back(s, stage, state.image)  # onFailure: rollbackCompleted: what still holds, undone
            ts, reason = drifted[0]
            raise StageFailed(f"stage {stage.name}: {ts.context}: {ts.message}{self._rollback_note(s)}", reason)

    def _failed(self, stage: Stage, s: int, ts: TargetState) -> None:
        c = self.control
        c.record("target-failed", f"{stage.name}/{ts.key}: {ts.reason}: {ts.message}")
        failures = sum(1 for w in self.tree.stages[s].waves for t in w.targets if t.state == "failed")
        if not self.stop_reason and (stage.fail_fast or failures > stage.max_failures):
            self.stop_reason = (f"{ts.context} failed ({ts.reason})"
                                + (" and failFast" if stage.fail_fast else f": {failures} > maxFailures"))
            c.record("stage-stopping", f"{stage.name}: {self.stop_reason}")

    async def _roll_back(self, s: int, stage: Stage, image: str) -> None:
        if stage.on_failure != "rollbackCompleted":
            return
        state = self.tree.stages[s]
        done = [(w, t, ts) for w, wave in enumerate(stage.waves) for t, ts in zip(wave.targets, state.waves[w].targets, strict=True)
                if ts.state == "verified"]
        for _, target, ts in reversed(done):
            rollout = stage.rollout_for(target, image, self.named_by)
            self.control.record("target-rollback", f"{stage.name}/{ts.key}: undo to the revision before")
            try:
                ended: RolloutStatus = await workflow.execute_child_workflow(
                    ACTION_WORKFLOWS["undo"].run, RevisionInput(rollout=rollout, requested_by=self.pipeline_id, action="undo"),
                    **names.start_options(rollout, strategy="undo", pipeline=self.pipeline_id), **family_queue(rollout),
                    parent_close_policy=workflow.ParentClosePolicy.ABANDON, result_type=RolloutStatus,
                    static_summary=f"undo {rollout.target_description} ({self.pipeline_id}: onFailure rollbackCompleted)")
            except (ChildWorkflowError, WorkflowAlreadyStartedError) as error:
                ts.state, ts.message = "rollbackFailed", str(getattr(error, "cause", None) or error)
                continue
            ok = ended.phase is Phase.HEALTHY
            ts.state = "rolledBack" if ok else "rollbackFailed"
            ts.message = f"rolled back to {ended.image}" if ok else f"rollback {ended.reason}: {ended.message}"
            self.control.record("target-rolled-back" if ok else "target-rollback-failed", f"{stage.name}/{ts.key}: "
                                f"{ts.message}")

    def _rollback_note(self, s: int) -> str:
        back = [t.context for w in self.tree.stages[s].waves for t in w.targets if t.state == "rolledBack"]
        stuck = [t.context for w in self.tree.stages[s].waves for t in w.targets if t.state == "rollbackFailed"]
        note = f"; rolled back {', '.join(back)}" if back else ""
        return note + (f"; rollback FAILED on {', '.join(stuck)}" if stuck else "")



def _ended(rollout: Rollout, reason: Reason, message: str) -> RolloutStatus:
    return RolloutStatus(rollout_id=rollout.rollout_id, name=rollout.metadata.name,
                         environment=rollout.metadata.environment, strategy=rollout.spec.strategy.name,
                         target=rollout.target_description, image=rollout.spec.image, phase=Phase.DEGRADED,
                         reason=reason.value, message=message)
