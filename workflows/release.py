"""A staged release: set the exposure → bake (a durable timer) → gate (analysis, approval) → next phase;
after the last phase, 100 %. The same for every channel (workflows/channels/): the workflow says how
much, the channel says it in its target's terms.

Decisions, each an update (CLI) and a signal (Web UI): `halt` (no new installs at once; the bake clock
stops; the phase does not advance) and `resume` (the same cohort goes on: the salt never changes),
`promote` (end this phase's bake now; `--full`: 100 % now), `rollback` (back to the previous release),
`abort` (stop where it is: halted, nothing undone), `approve`/`reject`, `skipAnalysis`. A failed gate
rolls back, or with `onFailure: halt` halts and waits for a person.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.analysis import AnalysisActivities
    from models.analysis import MeasureInput, Metric
    from models.approvals import HaltRequest
    from models.durations import format_duration
    from models.release import Adoption, ReleaseInput, ReleasePhase
    from models.status import Exposure, Phase, Reason, RolloutStatus
    from workflows.analysis import MEASURE, gate
    from workflows.approval import await_approval
    from workflows.channels import channel_for
    from workflows.control import RolloutControl, StatusQuery, failure_reason
    from workflows.errors import AnalysisFailed, RolloutAborted
    from workflows.handlers import Abort, Approve, Halt, Promote, Rollback, SkipAnalysis, supported_by

FULL = 10_000
MEASURED = "measured (spec.observe)"
HALT_PUBLISHED_FIRST = "halt-published-first"  # releases started before it showed Halted while publishing it


def first_number(value: str) -> float | None:
    """The first number in a measurement's JSON value (`[9.8]`, `9.8`, `{"share": 9.8}`)."""
    try:
        data = json.loads(value)
    except ValueError:
        return None
    while isinstance(data, (list, dict)) and data:
        data = data[0] if isinstance(data, list) else next(iter(data.values()))
    return float(data) if isinstance(data, (int, float)) and not isinstance(data, bool) else None


@workflow.defn(name="StagedRelease")
class StagedRelease(StatusQuery, Abort, Promote, Approve, Halt, Rollback, SkipAnalysis):
    @workflow.init
    def __init__(self, request: ReleaseInput) -> None:
        refused = getattr(request.release.spec.channel.spec, "REFUSED_DECISIONS", {})  # what the channel cannot do
        self.control = RolloutControl(request, (supported_by(type(self)) | {"full"}) - set(refused))
        self.rules = self.control.rules
        self.rules.why_not = dict(refused)
        self.spec = request.release.spec
        self.channel = channel_for(self.spec.channel.kind)(self.control, self.spec)
        self.points = 0  # the exposure the release is at (basis points)
        self.last_good = 0  # the last exposure whose gate passed
        self.published: tuple[int, bool] | None = None  # (points, halted) the channel says now
        self.following = False  # halts and resumes are published as they come
        self.lock = asyncio.Lock()

    @workflow.run
    async def run(self, request: ReleaseInput) -> RolloutStatus:
        return await self.control.wrap_up(await self.release())

    # ---- exposure ---------------------------------------------------------------------------------------

    @property
    def halted(self) -> bool:
        return self.control.pending.held is not None

    async def expose(self, points: int) -> None:
        """Publish `points` with the halt as it is now (one metadata change; serialised)."""
        async with self.lock:
            self.points = points
            halted = self.halted
            if self.published == (points, halted):
                return
            observed = await self.channel.expose(points, halted)
            self.published = (points, halted)
            s = self.control.status
            s.exposure = Exposure(desired=points / 100, observed=observed, source=self.channel.source,
                                  unit=self.channel.unit)

    async def observe(self) -> None:
        """`spec.observe`: how much of the audience runs it now, measured (a failed measurement keeps the
        last value and says so in the history)."""
        provider = self.spec.observe
        if provider is None:
            return
        c, artifact = self.control, self.spec.artifact
        metric = Metric(name="observed-exposure", provider=provider, success_condition="True")
        try:
            measured = await workflow.execute_activity_method(
                AnalysisActivities.measure, MeasureInput(rollout_id=c.status.rollout_id, template="observe",
                                                         metric=metric,
                                                         args={"version": artifact.version or artifact.variant or ""}),
                summary="observe the exposure", **MEASURE)
        except ActivityError as error:  # observing never decides: the release goes on
            c.record("observe-failed", failure_reason(error)[1])
            return
        share = first_number(measured.value)
        if measured.phase == "Error" or share is None:
            c.record("observe-failed", measured.message or f"no number in {measured.value!r}")
            return
        c.status.exposure = c.status.exposure.model_copy(update={"observed": round(share, 3), "source": MEASURED})
        c.record("observed", f"{share:.2f}% of the audience (desired {self.points / 100:g}%)")

    async def follow_halts(self) -> None:
        """A halt or resume reaches the channel at once, wherever the workflow waits."""
        while True:
            await workflow.wait_condition(
                lambda: not self.following or (self.published is not None and self.published[1] != self.halted))
            if not self.following:
                return
            await self.expose(self.points)

    # ---- the run ----------------------------------------------------------------------------------------

    def _left(self) -> str:
        """What a channel leaves behind when the release ends before publishing (a store's submission)."""
        left = self.channel.left_behind()
        return f"; {left}" if left else ""

    async def release(self) -> RolloutStatus:
        c = self.control
        phases = self.spec.phases
        c.start(len(phases))
        ended = await c.begin()
        if ended is not None:
            return ended
        try:
            await self.channel.prepare()
        except RolloutAborted as aborted:
            return c.finish(Phase.DEGRADED, Reason.ABORTED.value, f"{aborted} (nothing was published{self._left()})")
        except (ActivityError, ApplicationError) as error:
            reason, message = failure_reason(error)
            return c.finish(Phase.DEGRADED, reason, f"{message} (nothing was published{self._left()})")
        self.following = True
        follower = asyncio.create_task(self.follow_halts())
        try:
            return await self.phases()
        except RolloutAborted as aborted:
            return await self.end_badly(aborted.reason if not isinstance(aborted, AnalysisFailed)
                                        else Reason.ANALYSIS_FAILED, str(aborted))
        except ActivityError as error:
            reason, message = failure_reason(error)
            return c.finish(Phase.DEGRADED, reason, f"{message} (the channel stays at {self.points / 100:g}%)")
        finally:
            self.following = False
            await follower

    async def phases(self) -> RolloutStatus:
        c, phases = self.control, self.spec.phases
        for index, phase in enumerate(phases):
            if c.pending.promote_full:
                c.record("promote-full", f"phases {index + 1}-{len(phases)} skipped")
                break
            if self.halted:  # halted between phases: the next one waits (shown as Halted, not a rollout's hold)
                await self.wait_halted()
            await c.wait_for_window(index)
            c.start_step(index, phase.describe())
            await self.expose(phase.points)
            if phase.approval is not None:
                await await_approval(c, index, phase.approval, f"approval of phase {index + 1}: {phase.describe()}")
            await self.bake(index, phase)
            await self.observe()
            if phase.analysis is not None and not c.pending.promote_full:
                try:
                    await gate(c, index, phase.analysis)
                except AnalysisFailed as failed:
                    if self.spec.on_failure == "rollback":
                        raise
                    await self.halt_for_person(index, str(failed))
            self.last_good = phase.points
        await self.expose(FULL)
        self.last_good = FULL
        await self.observe()
        if self.spec.adoption is not None:
            short = await self.await_adoption(self.spec.adoption)
            if short:
                return c.finish(Phase.DEGRADED, Reason.ADOPTION_BELOW_MINIMUM.value, short)
        return await c.healthy(self.offered())

    def offered(self) -> str:
        """What the end means: the channel offers the release to all of its audience; how many run it is
        adoption, said only where measured (`spec.observe`)."""
        s = self.control.status
        text = f"{s.image} is offered to 100% of {s.target}"
        if s.exposure.source == MEASURED:
            text += f"; {s.exposure.observed:.2f}% of the audience runs it (measured)"
        return text

    def adopted(self, minimum: float) -> bool:
        return self.control.status.exposure.source == MEASURED and self.control.status.exposure.observed >= minimum

    async def await_adoption(self, adoption: Adoption) -> str:
        """`spec.adoption`: measure every `every` until the share reaches `minimum`; '' when it does, after
        `within` why not (an abort meanwhile rolls back, as anywhere)."""
        c = self.control
        deadline = workflow.now() + adoption.within
        while self.halted or not self.adopted(adoption.minimum):  # never Healthy while halted
            if self.halted:
                await self.wait_halted()
                await self.observe()
                continue
            left = deadline - workflow.now()
            if left <= timedelta(0):
                measured = (f"{c.status.exposure.observed:.2f}%" if c.status.exposure.source == MEASURED
                            else "no measurement")
                return (f"{self.offered()}, but after {format_duration(adoption.within)} adoption is {measured}, "
                        f"below adoption.minimum {adoption.minimum:g}%")
            c.show(Phase.PROGRESSING, message=f"offered to 100%; waiting until {adoption.minimum:g}% of the audience "
                                              f"runs it (measured every {format_duration(adoption.every)})")
            await c.wait_deciding(lambda: self.halted, min(adoption.every, left), "measure the adoption again")
            if not self.halted:
                await self.observe()
        return ""

    async def bake(self, index: int, phase: ReleasePhase) -> None:
        """The phase's bake: a durable timer that promote ends and a halt stops (its clock too)."""
        c, p = self.control, self.control.pending
        remaining = phase.bake
        p.in_pause, p.promote = True, None
        try:
            while remaining > timedelta(0) and not p.promote_full:
                if self.halted:
                    await self.wait_halted()
                    continue
                c.status.paused_until = workflow.now() + remaining
                c.change_phase(Phase.PAUSED, Reason.BAKING.value,
                               f"phase {index + 1} at {phase.points / 100:g}%: baking {format_duration(remaining)}")
                started = workflow.now()
                decided = await c.wait_deciding(lambda: p.promote is not None or self.halted, remaining,
                                                f"bake phase {index + 1}")
                remaining -= workflow.now() - started
                if not decided or p.promote is not None:
                    break
        finally:
            p.in_pause, p.promote = False, None
            c.status.paused_until = None
        c.change_phase(Phase.PROGRESSING, message=f"phase {index + 1} baked")

    async def wait_halted(self) -> None:
        c = self.control
        if workflow.patched(HALT_PUBLISHED_FIRST):  # the channel says halted before the status does
            await self.expose(self.points)
        held = c.pending.held
        c.status.paused_until = None
        c.change_phase(Phase.PAUSED, Reason.HALTED.value,
                       f"halted by {held.by if held else '?'}: no new installs; `rollout resume "
                       f"{c.status.rollout_id}` goes on with the same devices, `rollout rollback` goes back")
        await c.wait_deciding(lambda: not self.halted)
        c.change_phase(Phase.PROGRESSING, message="resumed")

    async def halt_for_person(self, index: int, why: str) -> None:
        """`onFailure: halt`: no new installs; resume goes on past the failed gate, rollback goes back."""
        c = self.control
        c.pending.held = HaltRequest(by="workflow", comment=why)
        c.status.held_by = "workflow"
        c.record("halted", why, by="workflow")
        c.announce("analysis-failed", "critical", f"phase {index + 1}: {why}: halted")
        await self.wait_halted()

    async def end_badly(self, reason: Reason, why: str) -> RolloutStatus:
        c = self.control
        c.pending.abort_closed = "the release is already ending"
        rolling_back = c.pending.rollback or reason is not Reason.ABORTED
        self.following = False
        async with self.lock:
            try:
                done = await (self.channel.roll_back(self.last_good) if rolling_back else self.channel.stop())
            except ActivityError as error:
                _, message = failure_reason(error)
                return c.finish(Phase.DEGRADED, Reason.ABORT_FAILED.value, f"{why}; going back failed: {message}")
        if rolling_back:
            share = self.channel.rolled_back_share(self.last_good)
            c.status.exposure = Exposure(desired=share, observed=share, unit=c.status.exposure.unit)
        reason_text = Reason.ROLLED_BACK.value if c.pending.rollback else reason.value
        return c.finish(Phase.DEGRADED, reason_text, f"{why}; {done}")
