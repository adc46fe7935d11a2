"""The updater channel in a staged release: the artifact uploaded once, then each phase one signed
metadata change of the channel (`publish_release`); rollback a new, higher version pointing at the
previous artifact with the downgrade sanctioned."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.targets.updater import UpdaterActivities
    from models.release import ReleaseSpecBody
    from models.updater import Artifact, ChannelInput, ChannelRelease, PublishInput, ReleaseState, UploadInput
    from workflows import options
    from workflows.context import Control


class UpdaterRelease:
    unit, source = "devices", "the channel's signed state"

    def __init__(self, control: Control, spec: ReleaseSpecBody) -> None:
        self.control, self.spec, self.updater = control, spec, spec.channel.updater
        self.salt = str(workflow.uuid4())  # fixed for the release: halts and resumes reshuffle nobody
        self.artifact: Artifact | None = None
        self.previous: Artifact | None = None
        self.seen: dict[str, int] = {}  # role -> the highest metadata version this release has been shown

    def _saw(self, release: ChannelRelease) -> ChannelRelease:
        self.seen = {role: max(self.seen.get(role, 0), release.versions.get(role, 0))
                     for role in sorted({*self.seen, *release.versions})}  # one order in every process
        return release

    async def _read(self, channel: str) -> ChannelRelease:
        u, platform = self.updater, self.spec.artifact.platform
        return self._saw(await workflow.execute_activity_method(
            UpdaterActivities.read_channel, ChannelInput(repository=u.repository, channel=channel, platform=platform,
                                                         seen=self.seen),
            summary=f"read {u.repository.describe()}#{channel}", **options.CHANNEL))

    async def prepare(self) -> None:
        a, u = self.spec.artifact, self.updater
        if u.promote_from is not None:  # the very artifact the channel before runs: nothing uploaded
            source = await self._read(u.promote_from)
            if source.current is None or source.current.version != a.version:
                runs = source.current.version if source.current else "nothing"
                raise ApplicationError(f"{u.promote_from} runs {runs}, not {a.version}: nothing to promote",
                                       type="Invalid", non_retryable=True)
            self.artifact = source.current
        else:
            handle = workflow.start_activity_method(
                UpdaterActivities.upload_artifact,
                UploadInput(repository=u.repository, path=a.file, version=a.version, platform=a.platform),
                summary=f"upload {a.describe()}", **options.UPLOAD)
            self.artifact = await self.control.run_interruptible(handle)
        before = await self._read(u.channel)
        same = before.current is not None and before.current.sha256 == self.artifact.sha256
        self.previous = before.previous if same else before.current
        self.control.status.stable_image = self.previous.version if self.previous else ""
        self.control.record("promoted-from" if u.promote_from else "uploaded",
                            f"{u.promote_from + ': ' if u.promote_from else ''}{self.artifact.name} sha256:{self.artifact.sha256[:12]} "
                                        f"({self.artifact.length} bytes); previous: "
                                        f"{self.previous.version if self.previous else 'none'}")

    async def _publish(self, artifact: Artifact, state: ReleaseState, what: str) -> float:
        u = self.updater
        result = self._saw(await workflow.execute_activity_method(
            UpdaterActivities.publish_release,
            PublishInput(repository=u.repository, channel=u.channel, release=self.control.status.rollout_id,
                         artifact=artifact, state=state, previous=self.previous, expiry=u.expiry, seen=self.seen),
            summary=what, **options.CHANNEL))
        self.control.record("published", f"{what}: {', '.join(f'{r} v{v}' for r, v in sorted(result.versions.items()))}")
        if result.current is None or result.state is None or result.current.sha256 != artifact.sha256:
            return 0.0
        return result.state.basis_points / 100

    async def expose(self, basis_points: int, halted: bool) -> float:
        assert self.artifact is not None
        u = self.updater
        state = ReleaseState(basis_points=basis_points, salt=self.salt, halted=halted, critical=u.critical,
                             minimum_version=u.minimum_version)
        return await self._publish(self.artifact, state, f"{basis_points / 100:g}%{' halted' if halted else ''}")

    async def roll_back(self, last_good: int) -> str:
        if self.previous is None:
            await self.expose(0, True)
            return "no previous release to go back to: halted at 0%"
        state = ReleaseState(basis_points=10_000, salt=self.salt, downgrade=True)
        await self._publish(self.previous, state, f"rollback to {self.previous.version}")
        return f"the channel is back on {self.previous.version} (downgrade sanctioned)"

    def left_behind(self) -> str:
        return ""  # an uploaded blob no signed metadata names is served to no device

    def rolled_back_share(self, last_good: int) -> float:
        return 0.0  # everyone is back on the previous release

    async def stop(self) -> str:
        await self.expose(0, True)
        return "halted: no new installs (devices that took it keep it)"
