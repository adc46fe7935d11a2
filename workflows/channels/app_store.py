"""The App Store channel in a staged release: the version prepared and submitted, App Review awaited
durably (a timer between reads: days cost a few events), the version released, then Apple's phased
release driven — `ACTIVE` (Apple's own 7-day schedule moves it), `PAUSED` for a halt or a failed gate,
`COMPLETE` at the end or on `promote --full`. Apple takes no released version back: going back pauses."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.targets.appstore import APPROVED, IN_REVIEW, REJECTED, RELEASED, AppStoreActivities
    from models.appstore import AppStoreVersionInput, AppStoreVersionState, PhasedReleaseInput
    from models.release import ReleaseSpecBody
    from models.status import Phase, Reason
    from workflows import options
    from workflows.context import Control


class AppStoreRelease:
    unit, source = "userFraction", "Apple's phased release"

    def __init__(self, control: Control, spec: ReleaseSpecBody) -> None:
        self.control, self.spec, self.apple = control, spec, spec.channel.app_store
        self.version = AppStoreVersionInput(channel=self.apple, version=spec.artifact.version, build=spec.artifact.build)
        self.state: AppStoreVersionState | None = None
        self.share = 0.0

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
        """Read App Review's verdict every `reviewPoll` until it approves (or rejects, or takes longer than
        `reviewTimeout`); an abort meanwhile ends the release with nothing published."""
        c, a = self.control, self.apple
        since = workflow.now()
        while self.state.state not in (*APPROVED, *RELEASED):
            if self.state.state in REJECTED:
                raise ApplicationError(f"App Review: {self.version.version} ({self.version.build}) is "
                                       f"{self.state.state}: see App Store Connect's Resolution Center",
                                       type="StoreRejected", non_retryable=True)
            waited = workflow.now() - since
            if waited >= a.review_timeout:
                raise ApplicationError(f"App Review: no verdict on {self.version.version} after {waited}",
                                       type="StoreRejected", non_retryable=True)
            c.status.paused_until = None
            c.change_phase(Phase.PAUSED, Reason.IN_REVIEW.value,
                           f"in review since {since:%Y-%m-%d %H:%M} UTC ({self.state.state}); "
                           f"next look in {a.review_poll}")
            await c.wait_deciding(lambda: False, a.review_poll, "App Review")
            await self._call(AppStoreActivities.read_version, self.version, "read App Review's verdict")
        c.record("approved", f"App Review: {self.state.state} after {workflow.now() - since}")
        c.change_phase(Phase.PROGRESSING, message="approved by App Review")

    async def _phased(self, state: str) -> float:
        assert self.state is not None
        s = await self._call(AppStoreActivities.set_phased_release,
                             PhasedReleaseInput(channel=self.apple, version_id=self.state.version_id, state=state),
                             f"phased release {state}")
        self.share = s.percent
        self.control.record("published", f"phased release {s.phased_state}, day {s.day} ({s.percent:g}%), "
                                         f"paused {s.paused_seconds // 3600}h in total")
        self.source = f"Apple's phased release: {s.phased_state}, day {s.day}"  # shown beside our share
        return self.share

    async def expose(self, basis_points: int, halted: bool) -> float:
        """Apple's schedule sets the share; this says whether it moves (ACTIVE), stands (PAUSED) or ends."""
        wanted = "PAUSED" if halted else "COMPLETE" if basis_points >= 10_000 else "ACTIVE"
        return await self._phased(wanted)

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
