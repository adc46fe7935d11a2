"""The flag channel in a staged release: each phase one write of the flag's fractional share; going
back sets the share of the last phase whose gate passed, or the share the flag had before the release
when that is higher (releases started before the `flag-rollback-keeps-share-before` patch: the last
good share, 0 % if no gate passed) — the fractional entries read before the first phase, written back
exactly, for releases with the plan checked. Before the first phase the read checks the whole plan (each phase's
share, then 100 %): what the store cannot write, or a first phase below the share now, ends the release
with nothing written (releases started before the `flag-prepare-checks-plan` patch: found at the phase)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.targets.flag import FlagActivities
    from models.flags import FlagInput
    from models.release import ReleaseSpecBody
    from workflows import options
    from workflows.context import Control

ROLLBACK_KEEPS_BEFORE = "flag-rollback-keeps-share-before"
PREPARE_CHECKS_PLAN = "flag-prepare-checks-plan"
FULL = 10_000  # every release ends at 100 %


class FlagRelease:
    unit, source = "percent", "the flag store"

    def __init__(self, control: Control, spec: ReleaseSpecBody) -> None:
        self.control, self.flag, self.variant = control, spec.channel.flag, spec.artifact.variant
        self.phases = [phase.points for phase in spec.phases]
        self.share = self.before = self.rolled_to = 0
        self.before_entries: list | None = None  # the fractional as read (releases with the plan checked)

    async def prepare(self) -> None:
        plan = [*self.phases, FULL] if workflow.patched(PREPARE_CHECKS_PLAN) else []
        before = await workflow.execute_activity_method(
            FlagActivities.read_flag_share,
            FlagInput(channel=self.flag, variant=self.variant, basis_points=0, plan=plan),
            summary=f"read {self.flag.describe()}", **options.CHANNEL)
        self.share = self.before = before.basis_points
        self.before_entries = before.entries if plan else None
        self.control.status.stable_image = f"{self.variant} at {before.basis_points / 100:g}%"

    async def _write(self, basis_points: int, what: str, restore: list | None = None) -> float:
        state = await workflow.execute_activity_method(
            FlagActivities.set_flag_share,
            FlagInput(channel=self.flag, variant=self.variant, basis_points=basis_points, restore=restore),
            summary=what, **options.CHANNEL)
        self.share = state.basis_points
        self.control.record("published", f"{what}: revision {state.revision}")
        return state.basis_points / 100

    async def expose(self, basis_points: int, halted: bool) -> float:
        if halted:  # no new users: the share stays where it is
            return self.share / 100
        return await self._write(basis_points, f"{self.variant} {basis_points / 100:g}%")

    async def roll_back(self, last_good: int) -> str:
        restore = None
        if self.before > last_good and workflow.patched(ROLLBACK_KEEPS_BEFORE):
            self.rolled_to, what, restore = self.before, "the share before the release", self.before_entries
        else:
            self.rolled_to, what = last_good, "the last good share"
        await self._write(self.rolled_to, f"{self.variant} back to {self.rolled_to / 100:g}%", restore)
        return f"{self.flag.flag}: {self.variant} back to {what}, {self.rolled_to / 100:g}%"

    def left_behind(self) -> str:
        return ""  # before the first phase the flag is only read

    def rolled_back_share(self, last_good: int) -> float:
        return self.rolled_to / 100

    async def stop(self) -> str:
        return f"{self.flag.flag}: {self.variant} stays at {self.share / 100:g}%"
