"""The App Store channel in a staged release: the version prepared and submitted, App Review awaited
durably (a timer between reads: days cost a few events), the version released, then Apple's phased
release driven — `ACTIVE` (Apple's own 7-day schedule moves it), `PAUSED` for a halt or a failed gate,
`COMPLETE` at the end or on `promote --full`. Apple takes no released version back: going back pauses.
An approved version Apple itself holds (`ACCEPTED`, `PENDING_APPLE_RELEASE`) is waited on until it is
`PENDING_DEVELOPER_RELEASE` (the only state a release request is taken in) or released. Pauses are
measured here from the workflow's clock: Apple's `totalPauseDuration` has no documented unit."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

RELEASE_ONLY_WHEN_RELEASABLE = "app-store-waits-for-pending-developer-release"  # before: any approved state

with workflow.unsafe.imports_passed_through():
    from activities.targets.appstore import APPROVED, IN_REVIEW, REJECTED, RELEASABLE, RELEASED, AppStoreActivities
    from models.appstore import MAX_PAUSE, AppStoreVersionInput, AppStoreVersionState, PhasedReleaseInput
    from models.durations import format_duration
    from models.release import ReleaseSpecBody
    from workflows import options
    from workflows.channels.review import await_verdict
    from workflows.context import Control


class AppStoreRelease:
    unit, source = "userFraction", "Apple's phased release"

    def __init__(self, control: Control, spec: ReleaseSpecBody) -> None:
        self.control, self.spec, self.apple = control, spec, spec.channel.app_store
        self.version = AppStoreVersionInput(channel=self.apple, version=spec.artifact.version, build=spec.artifact.build)
        self.state: AppStoreVersionState | None = None
        self.share = 0.0
        self.paused_since = None  # when our pause began (workflow time), while paused
        self.paused = timedelta(0)  # pauses that ended

    async def _call(self, method, argument, what: str) -> AppStoreVersionState:
        self.state = await workflow.execute_activity_method(method, argument, summary=what, **options.CHANNEL)
        return self.state

    async def prepare(self) -> None:
        v = self.version
        state = await self._call(AppStoreActivities.prepare_version, v, f"prepare {v.version} ({v.build})")
        self.control.record("prepared", f"version {state.version_id} with build {state.build_id}: {state.state}")
        if state.state not in (*IN_REVIEW, *APPROVED, *RELEASED):
            state = await self._call(AppStoreActivities.submit_for_review, v, "submit for App Review")
            self.control.record("submitted", f"{v.version} ({v.build}) to App Review: {state.state}")
        await self.wait_for_review()
        if self.state.state not in RELEASED:
            state = await self._call(AppStoreActivities.release_version, v, f"release {v.version}")
            self.control.record("released", f"{v.version}: {state.state}, phased release {state.phased_state}")

    async def wait_for_review(self) -> None:
        """App Review's verdict, read every `reviewPoll` (an abort meanwhile publishes nothing)."""
        a, v = self.apple, self.version

        async def read() -> str:
            return (await self._call(AppStoreActivities.read_version, v, "read App Review's verdict")).state

        done = (RELEASABLE, *RELEASED) if workflow.patched(RELEASE_ONLY_WHEN_RELEASABLE) else (*APPROVED, *RELEASED)
        await await_verdict(self.control, "App Review", self.state.state, read, done, REJECTED,
                            a.review_poll, a.review_timeout,
                            lambda state: f"App Review: {v.version} ({v.build}) is {state}: see App Store "
                                          "Connect's Resolution Center")

    async def _phased(self, state: str) -> float:
        assert self.state is not None
        s = await self._call(AppStoreActivities.set_phased_release,
                             PhasedReleaseInput(channel=self.apple, version_id=self.state.version_id, state=state),
                             f"phased release {state}")
        self.share = s.percent
        now = workflow.now()
        if s.phased_state == "PAUSED" and self.paused_since is None:
            self.paused_since = now
        elif s.phased_state != "PAUSED" and self.paused_since is not None:
            self.paused, self.paused_since = self.paused + (now - self.paused_since), None
        paused = self.paused + (now - self.paused_since if self.paused_since is not None else timedelta(0))
        self.control.record("published", f"phased release {s.phased_state}, day {s.day} ({s.percent:g}%), paused "
                                         f"{format_duration(paused) if paused else '0s'} in total (measured; Apple "
                                         f"resumes it after {MAX_PAUSE.days} days paused)")
        self.source = f"Apple's phased release: {s.phased_state}, day {s.day}"  # shown beside our share
        return self.share

    async def expose(self, basis_points: int, halted: bool) -> float:
        """Apple's schedule sets the share; this says whether it moves (ACTIVE), stands (PAUSED) or ends."""
        wanted = "PAUSED" if halted else "COMPLETE" if basis_points >= 10_000 else "ACTIVE"
        return await self._phased(wanted)

    def left_behind(self) -> str:
        """A version prepared or in review stays in App Store Connect; set to a manual release, it goes out
        only if someone releases it there."""
        if self.state is None or self.state.state in RELEASED:
            return ""
        return (f"version {self.version.version} ({self.version.build}) stays in App Store Connect "
                f"({self.state.state}, released only by hand there)")

    def rolled_back_share(self, last_good: int) -> float:
        return self.share

    async def roll_back(self, last_good: int) -> str:
        await self._phased("PAUSED")
        return (f"phased release paused at {self.share:g}%: Apple takes no released version back "
                "(users who have it keep it; ship a fix)")

    async def stop(self) -> str:
        if self.state is None or not self.state.phased_release_id:
            return "nothing released"
        await self._phased("PAUSED")
        return f"phased release paused at {self.share:g}% (Apple resumes it itself after 30 days paused)"
