"""The Microsoft Store channel in a staged release: one submission with the package and a gradual
package rollout at the first phase's percentage, committed, certification awaited durably, then the
percentage raised phase by phase and finalized at the end. Microsoft cannot pause a rollout (halt is
refused for this channel); going back is `haltpackagerollout`: new customers get the previous packages.
A certified submission held for someone to publish it in Partner Center (`PendingPublication`, where the
channel set `targetPublishMode: Immediate`: someone changed it there) is waited on durably, the status
saying so: once published, the package rollout is the release's to raise, halt or finalize."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.targets.msstore import FAILED, HELD, HELD_HINT, MicrosoftStoreActivities
    from models.msstore import StoreRollout, StoreRolloutInput, StoreSubmission, StoreSubmissionInput
    from models.release import ReleaseSpecBody
    from workflows import options
    from workflows.channels.review import await_verdict
    from workflows.context import Control
    from workflows.errors import RolloutAborted


class MicrosoftStoreRelease:
    unit, source = "userFraction", "the Store's package rollout"

    def __init__(self, control: Control, spec: ReleaseSpecBody) -> None:
        self.control, self.spec, self.store = control, spec, spec.channel.microsoft_store
        self.submission: StoreSubmission | None = None
        self.cut_short = False  # an abort ended the submission's creation before its answer
        self.share = 0.0

    async def prepare(self) -> None:
        a, s = self.spec.artifact, self.store
        handle = workflow.start_activity_method(
            MicrosoftStoreActivities.create_submission,
            StoreSubmissionInput(channel=s, path=a.file, version=a.version, basis_points=self.spec.phases[0].points),
            summary=f"submit {a.describe()} to {s.describe()}", **options.STORE_UPLOAD)
        try:
            self.submission = await self.control.run_interruptible(handle)
        except RolloutAborted:
            self.cut_short = True
            raise
        self.control.record("submitted", f"submission {self.submission.id}: {self.submission.status} "
                                         f"({'package uploaded' if self.submission.uploaded else 'the blob had it'})")

        async def read() -> str:
            self.submission = await workflow.execute_activity_method(
                MicrosoftStoreActivities.read_submission, self._rollout("read"), summary="read certification",
                **options.CHANNEL)
            return self.submission.status

        await await_verdict(self.control, "certification", self.submission.status, read, ("Published",), FAILED,
                            s.certification_poll, s.certification_timeout,
                            lambda state: f"Microsoft Store: submission {self.submission.id} {state}: "
                                          f"{'; '.join(self.submission.errors) or 'see Partner Center'}",
                            {state: HELD_HINT for state in HELD})

    def left_behind(self) -> str:
        """A committed submission the release ended before: it publishes itself once certified."""
        if self.submission is None:
            return ("a submission may stay in Partner Center (the release ended while it was created and committed): "
                    "look there — once certified it would publish itself") if self.cut_short else ""
        if self.submission.status in FAILED:
            return ""
        return (f"submission {self.submission.id} stays in Partner Center ({self.submission.status}): once "
                f"published it starts a package rollout at {self.spec.phases[0].points / 100:g}% that no release "
                "watches — delete it there")

    def _rollout(self, action: str, basis_points: int = 0) -> StoreRolloutInput:
        assert self.submission is not None
        return StoreRolloutInput(channel=self.store, submission_id=self.submission.id, action=action,
                                 basis_points=basis_points)

    async def _set(self, action: str, basis_points: int, what: str) -> StoreRollout:
        rollout = await workflow.execute_activity_method(
            MicrosoftStoreActivities.set_rollout, self._rollout(action, basis_points), summary=what, **options.CHANNEL)
        self.share = 100.0 if rollout.status == "PackageRolloutComplete" else rollout.percentage
        self.control.record("published", f"package rollout {rollout.status} at {rollout.percentage:g}%")
        return rollout

    async def expose(self, basis_points: int, halted: bool) -> float:
        if halted:  # not offered for this channel (REFUSED_DECISIONS): the percentage stays
            return self.share
        if basis_points >= 10_000:
            await self._set("finalize", basis_points, "finalize the package rollout")
        else:
            await self._set("raise", basis_points, f"package rollout {basis_points / 100:g}%")
        return self.share

    def rolled_back_share(self, last_good: int) -> float:
        return self.share

    async def roll_back(self, last_good: int) -> str:
        if self.submission is None:
            return "nothing was submitted"
        rollout = await self._set("halt", 0, "halt the package rollout")
        return (f"package rollout halted at {self.share:g}%: new customers get the previous packages (submission "
                f"{rollout.fallback_submission_id or '?'}); customers who have it keep it")

    async def stop(self) -> str:
        return (f"the package rollout stays at {self.share:g}% (the Store cannot pause one; halting it in Partner "
                "Center is final)")
