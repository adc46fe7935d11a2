"""The generic MDM channel in a staged release: the package and its deployment policy deployed once,
then each phase adds a ring of device groups to the policy (the set replaced as a whole); a halt
pauses the policy (this MDM can), resume reactivates it; going back unassigns and pauses it (devices
that installed it keep it). The assignment status is recorded after each change."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.targets.mdm import MdmActivities
    from models.mdm import MdmDeployInput, MdmGroupsInput, MdmStatus
    from models.release import ReleaseSpecBody
    from models.rings import rings_at
    from workflows import options
    from workflows.context import Control
    from workflows.errors import RolloutAborted


class MdmRelease:
    unit, source = "percent", "the deployment policy's rings"

    def __init__(self, control: Control, spec: ReleaseSpecBody) -> None:
        self.control, self.spec, self.mdm = control, spec, spec.channel.mdm
        self.policy_id = ""
        self.cut_short = False  # an abort ended the deploy before its answer (what it made may stay)
        self.groups: list[str] = []
        self.share = 0.0

    async def prepare(self) -> None:
        a = self.spec.artifact
        handle = workflow.start_activity_method(
            MdmActivities.deploy, MdmDeployInput(channel=self.mdm, path=a.file, version=a.version),
            summary=f"deploy {a.describe()} as {self.mdm.policy}", **options.STORE_UPLOAD)
        try:
            status: MdmStatus = await self.control.run_interruptible(handle)
        except RolloutAborted:
            self.cut_short = True
            raise
        self.policy_id = status.policy_id
        self.control.record("deployed", f"policy {self.mdm.policy} ({status.policy_id}), package {status.package_id} "
                                        f"({'uploaded' if status.uploaded else 'already on the server'})")

    async def _set(self, groups: list[str], state: str, what: str) -> MdmStatus:
        status = await workflow.execute_activity_method(
            MdmActivities.set_groups, MdmGroupsInput(channel=self.mdm, policy_id=self.policy_id, groups=groups,
                                                     state=state), summary=what, **options.CHANNEL)
        self.control.record("published", f"{what}: {status.state}, {status.installed}/{status.targeted} installed, "
                                         f"{status.failed} failed, {status.pending} pending")
        return status

    async def expose(self, basis_points: int, halted: bool) -> float:
        rings = rings_at(self.mdm.rings, basis_points)
        self.groups = [g for ring in rings for g in (ring.groups or ["*"])]
        await self._set(self.groups, "paused" if halted else "active",
                        f"rings {', '.join(r.name for r in rings) or 'none'}{' (paused)' if halted else ''}")
        self.share = rings[-1].share if rings else 0.0
        return self.share

    def left_behind(self) -> str:
        """An abort during the deploy: the package and policy it was making may be on the server (once deployed,
        nothing in `prepare` can end the release)."""
        if not self.cut_short:
            return ""
        return (f"the package and deployment policy {self.mdm.policy} may stay on the MDM server (the release ended "
                "while they were deployed): look there")

    def rolled_back_share(self, last_good: int) -> float:
        return 0.0

    async def roll_back(self, last_good: int) -> str:
        await self._set([], "paused", "unassign")
        return f"policy {self.mdm.policy} unassigned and paused (devices that installed it keep it)"

    async def stop(self) -> str:
        status = await self._set(self.groups, "paused", "pause")
        return f"policy {self.mdm.policy} paused with its rings ({status.installed} devices installed it)"
