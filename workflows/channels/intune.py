"""The Intune channel in a staged release: each phase adds a ring of device groups to the app's
assignments (the whole set sent again: Graph's `assign` replaces it); after the last phase the last
ring (everyone). A halt adds no ring (devices already assigned go on installing: Intune has no pause);
going back takes out the ring targets the release added, so the app has the assignments it had before
(devices that installed it keep it). Every other assignment — exclusions, all-users and all-devices
targets, their settings, and what an administrator changes meanwhile — is kept exactly as Graph holds it;
a ring group the app excludes, or assigns with another intent, stops the release before anything is
assigned."""

from __future__ import annotations

from temporalio import workflow

KEEPS_AS_READ = "intune-keeps-every-assignment-as-read"  # releases before it kept only other groups' (group, intent)

with workflow.unsafe.imports_passed_through():
    from activities.targets.intune import IntuneActivities
    from models.intune import AssignInput, Assignment
    from models.release import ReleaseSpecBody
    from models.rings import rings_at
    from workflows import options
    from workflows.context import Control


class IntuneRelease:
    unit, source = "percent", "the app's assignments in Intune"

    def __init__(self, control: Control, spec: ReleaseSpecBody) -> None:
        self.control, self.intune = control, spec.channel.intune
        self.before: list[Assignment] = []
        self.assigned: list[str] = []  # the ring groups assigned so far (what going back takes out)
        self.left_out: list[str] = []  # earlier rings' groups removed in Intune meanwhile: never assigned again
        # ring groups assigned and since seen assigned by a read: only such a group, missing later, was removed
        # by someone (Graph promises no read-after-write: a group just assigned may not show yet)
        self.confirmed: list[str] = []
        self.app_type = ""  # the app's @odata.type, as prepare read it
        self.share = 0.0

    async def _assign(self, groups: list[str], keep: list[Assignment], what: str) -> None:
        groups = [g for g in groups if g not in self.left_out]
        earlier, self.assigned = self.assigned, list(dict.fromkeys([*self.assigned, *groups]))
        result = await workflow.execute_activity_method(
            IntuneActivities.assign, AssignInput(channel=self.intune, groups=groups, keep=keep, assigned=self.assigned,
                                                 earlier=self.confirmed, app_type=self.app_type),
            summary=what, **options.CHANNEL)
        self.confirmed = list(dict.fromkeys([*self.confirmed, *(g for g in result.present if g in earlier)]))
        self.control.record("published", f"{what}: {len(result.assignments)} assignments"
                                         f"{'' if result.changed else ' (already so)'}")
        if result.left_out:  # an administrator's removal stands: going back leaves the group alone too
            self.left_out += result.left_out
            self.assigned = [g for g in self.assigned if g not in result.left_out]
            self.control.record("left-out", f"{', '.join(result.left_out)}: removed from the app in Intune during the "
                                            "release; not assigned again")

    async def prepare(self) -> None:
        whole = workflow.patched(KEEPS_AS_READ)
        rings = [g for ring in self.intune.rings for g in (ring.groups or ["*"])] if whole else []
        found = await workflow.execute_activity_method(
            IntuneActivities.read_assignments, AssignInput(channel=self.intune, groups=rings),
            summary="read the app and its assignments", **options.CHANNEL)
        self.app_type = found.app_type
        if whole:
            self.before = list(found.assignments)
        else:
            ours = {g for ring in self.intune.rings for g in ring.groups} | {"*"}
            self.before = [a for a in found.assignments if (a.group_id or "*") not in ours]
        self.control.status.stable_image = f"{len(found.assignments)} assignments before the release"
        kind = f" ({found.app_type})" if found.app_type else ""
        self.control.record("prepared", f"{self.intune.describe()}{kind}: assigned to "
                                        f"{', '.join(found.groups()) or 'nobody'}")

    async def expose(self, basis_points: int, halted: bool) -> float:
        if halted:  # no new ring; the rings assigned stay (Intune cannot pause installs)
            return self.share
        rings = rings_at(self.intune.rings, basis_points)
        groups = [g for ring in rings for g in (ring.groups or ["*"])]
        await self._assign(groups, self.before, f"rings {', '.join(r.name for r in rings) or 'none'}")
        self.share = rings[-1].share if rings else 0.0
        return self.share

    def left_behind(self) -> str:
        return ""  # before the first ring the app's assignments are only read

    def rolled_back_share(self, last_good: int) -> float:
        return 0.0

    async def roll_back(self, last_good: int) -> str:
        await self._assign([], self.before, "the assignments from before")
        self.share = 0.0
        return (f"the app's assignments are back to the {len(self.before)} from before the release "
                "(devices that installed it keep it)")

    async def stop(self) -> str:
        return f"the rings assigned stay ({self.share:g}% of the fleet); no ring is added"
