"""The Google Play channel in a staged release: the bundle uploaded once and put on the track as a
draft release (served to nobody) in the same edit, then each phase one edit of the track (`userFraction`; 100 %:
`completed`); a halt is Play's `halted`. Play serves no older version code to users who have the newer
one: going back halts the release."""

from __future__ import annotations

from temporalio import workflow

ONE_EDIT = "play-uploads-and-places-in-one-edit"  # before: the upload's edit held the bundle alone

with workflow.unsafe.imports_passed_through():
    from activities.targets.play import PlayActivities
    from models.play import PlayBundle, PlayTrackInput, PlayTrackQuery, PlayUploadInput
    from models.release import ReleaseSpecBody
    from workflows import options
    from workflows.context import Control
    from workflows.errors import RolloutAborted


class PlayRelease:
    unit, source = "userFraction", "the track on Google Play"

    def __init__(self, control: Control, spec: ReleaseSpecBody) -> None:
        self.control, self.spec, self.play = control, spec, spec.channel.google_play
        self.bundle: PlayBundle | None = None
        self.cut_short = False  # an abort ended the upload before its answer (the upload may have gone through)
        self.share = 0.0

    async def prepare(self) -> None:
        a, p = self.spec.artifact, self.play
        first = PlayTrackInput(channel=p, version_code=0, version_name=a.version, basis_points=0,
                               draft=True) if workflow.patched(ONE_EDIT) else None
        handle = workflow.start_activity_method(
            PlayActivities.upload_bundle, PlayUploadInput(package_name=p.package_name, path=a.file, track=first),
            summary=f"upload {a.describe()} to {p.package_name}"
                    f"{f' as a draft on {p.track}' if first else ''}", **options.STORE_UPLOAD)
        try:
            self.bundle = await self.control.run_interruptible(handle)
        except RolloutAborted:
            self.cut_short = True
            raise
        before = await workflow.execute_activity_method(
            PlayActivities.read_track, PlayTrackQuery(channel=p), summary=f"read {p.describe()}", **options.CHANNEL)
        previous = [c for c in before.completed_codes() if c != self.bundle.version_code]
        self.control.status.stable_image = f"version code {', '.join(map(str, previous))}" if previous else ""
        self.control.record("uploaded", f"{a.describe()}: version code {self.bundle.version_code} "
                                        f"sha256:{self.bundle.sha256[:12]} "
                                        f"({'uploaded' if self.bundle.uploaded else 'already on Play'}); "
                                        f"{p.track} serves {previous or 'nothing'} beside it")

    async def _set(self, basis_points: int, halted: bool, what: str) -> float:
        assert self.bundle is not None
        p = self.play
        state = await workflow.execute_activity_method(
            PlayActivities.set_track,
            PlayTrackInput(channel=p, version_code=self.bundle.version_code, version_name=self.spec.artifact.version,
                           basis_points=basis_points, halted=halted),
            summary=what, **options.CHANNEL)
        release = state.release_of(self.bundle.version_code)
        shown = f"{release.status} {release.user_fraction if release.user_fraction is not None else ''}".strip() \
            if release else "not on the track"
        self.control.record("published", f"{p.track}: {self.bundle.version_code} {shown}"
                                         f"{'' if state.committed else ' (already so)'}")
        self.share = state.percent_of(self.bundle.version_code)
        return self.share

    async def expose(self, basis_points: int, halted: bool) -> float:
        return await self._set(basis_points, halted, f"{self.play.track} {basis_points / 100:g}%"
                                                     f"{' halted' if halted else ''}")

    def left_behind(self) -> str:
        """Play keeps every upload; the upload's edit put it on the track as a draft, served to nobody."""
        if self.bundle is None:
            return (f"the bundle may stay uploaded to {self.play.package_name} (the release ended during the "
                    f"upload; at most a draft on {self.play.track}, served to nobody)") if self.cut_short else ""
        return (f"version code {self.bundle.version_code} stays uploaded to {self.play.package_name} (at most a "
                f"draft on {self.play.track}, served to nobody)")

    def rolled_back_share(self, last_good: int) -> float:
        return self.share

    async def roll_back(self, last_good: int) -> str:
        await self._set(0, True, f"{self.play.track}: halt")
        return ("halted on Play: no new users; users who have it keep it (Play serves no older version code "
                "to them: ship a fix with a higher one)")

    async def stop(self) -> str:
        await self._set(0, True, f"{self.play.track}: halt")
        return f"halted on Play at {self.share:g}%: no new users (users who have it keep it)"
