"""A pipeline's gate before a stage, in order: pre-deployment checks (one measurement each, through the
analysis providers: `kubernetes` for a cluster's nodes, `web` for migrations, dependencies, scans —
every result kept in the stage's status), the soak (the bundle stayed verified in the stage before for
`soak`, then the stage before is read again: still on the bundle, settled), the execution window, an
analysis, the approval. Each wait is the control plane's: promote ends a soak early, abort ends any."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.analysis import AnalysisActivities
    from models.analysis import MeasureInput
    from models.durations import format_duration
    from models.pipeline import CheckResult, Stage
    from models.spec import Rollout
    from models.status import Reason
    from workflows.analysis import MEASURE, gate
    from workflows.approval import await_approval
    from workflows.control import RolloutControl
    from workflows.errors import StageFailed
    from workflows.waves import Waves


SOAK_OWN_IMAGE = "soak-reads-the-stage-before-for-its-own-image"  # workflow.patched: runs recorded before compared
                                                                # with this stage's image


class Gates:
    def __init__(self, control: RolloutControl, waves: Waves):
        self.control, self.waves = control, waves

    async def run(self, index: int, s: int, stage: Stage, before: list[Rollout], image: str) -> None:
        """The gate of stage `s` (step `index`); `before`: the rollouts of the stage before (for the soak)."""
        c, g = self.control, stage.gate
        c.status.pipeline.stages[s].state = "gate"
        for check in g.checks:
            await self._check(s, check)
        if g.soak:
            await self._soak(index, s, stage, before, image)
        if g.execution_windows:
            await c.wait_for_window(index, g.execution_windows)
        if g.analysis:
            await gate(c, index, g.analysis)
        if g.approval and stage.approve == "stage":
            await await_approval(c, index, g.approval, f"{stage.name}: approval before the stage starts")

    async def _check(self, s: int, check) -> None:
        c = self.control
        handle = workflow.start_activity_method(
            AnalysisActivities.measure,
            MeasureInput(rollout_id=c.status.rollout_id, template=f"check-{check.name}", metric=check.metric, args={}),
            summary=f"pre-deployment check {check.name}", **MEASURE)
        measured = await c.run_interruptible(handle)
        result = CheckResult(name=check.name, phase=measured.phase, value=measured.value, message=measured.message,
                             at=workflow.now())
        c.status.pipeline.stages[s].checks.append(result)
        c.record("check", f"{check.name}: {measured.phase} {measured.value or measured.message}".strip())
        if measured.phase != "Successful":
            raise StageFailed(f"pre-deployment check {check.name} before {c.status.pipeline.stages[s].name}: "
                              f"{measured.phase} {measured.value or measured.message}".strip(), Reason.CHECK_FAILED)

    async def _soak(self, index: int, s: int, stage: Stage, before: list[Rollout], image: str) -> None:
        c, soak = self.control, stage.gate.soak
        previous = c.status.pipeline.stages[s - 1]
        verified_at = previous.verified_at or workflow.now()
        left = verified_at + soak - workflow.now()
        await c.pause(index, left, f"soaking: {previous.name} verified at {verified_at:%Y-%m-%d %H:%M:%S} UTC; "
                                   f"{stage.name} after {format_duration(soak)} of it")
        for rollout in before:  # the soak counts only if the stage before still runs the bundle
            seen = await self.waves._observe(rollout)
            # its own image (a bundle of several images: the stage before may deploy another than this one)
            expected = rollout.spec.image if workflow.patched(SOAK_OWN_IMAGE) else image
            if seen.version != expected or not seen.ready:
                raise StageFailed(f"soak before {stage.name}: {rollout.target_description} now runs {seen.version}"
                                  f"{'' if seen.ready else ' (not settled)'}, not the bundle's {expected}",
                                  Reason.CHECK_FAILED)
        c.record("soaked", f"{previous.name} held {previous.image} for {format_duration(soak)}")
