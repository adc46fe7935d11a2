"""`ReleaseTrain`: the releases of one channel, in the order submitted, each a `StagedRelease` child
workflow (its own history, its own decisions: `rollout halt <its ID>` as for any release).

Submitting is an update with a validator (the CLI) and a signal (the Web UI). The train's own history
grows by a few events per release and per submission; before it reaches `continueAfterEvents` (or the
server suggests it) the train continues as new with what is still queued, so a year of nightly releases
is many small runs, never one long history. It can look only between releases, so at most `maxQueued`
releases wait: a submission beyond, or one while the history nears its limit, is refused, and one release with the submissions accepted while it
runs adds a bounded number of events (`models.train.headroom`).
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from models import names
    from models.release import Release, ReleaseInput
    from models.starter import starter_identity
    from models.status import Phase, RolloutStatus
    from models.train import (
        KEPT_RESULTS,
        SubmitRelease,
        SubmitResult,
        TrainedRelease,
        TrainInput,
        TrainStatus,
        room,
    )
    from workflows.continuation import continued_run
    from workflows.release import StagedRelease
    from workflows.starter import verify_start

HEADROOM = 50  # before BOUNDED: a fixed guess of what a release adds, overrun by submissions while it ran
BOUNDED = "train-bounded-queue"  # at most maxQueued waiting; the headroom counts them
UNPROVEN_REFUSED = "train-refuses-unproven-starters"  # a signal's release that needs a proven starter: not queued
SUBMITTER_PROVEN = "train-proves-submitters"  # an update's release that needs one: its token checked, then queued
SEARCHABLE = "train-releases-searchable"  # a train's releases carry the search attributes every start gives


@workflow.defn(name="ReleaseTrain")
class ReleaseTrain:
    @workflow.init
    def __init__(self, request: TrainInput) -> None:
        self.request = request
        self.queued: list[Release] = list(request.queued)
        self.queued_by: list[str] = list(request.queued_by) + [""] * (len(request.queued) - len(request.queued_by))
        proven = list(request.queued_proven) if request.queued_proven and continued_run() else []  # else: a forgery
        self.queued_proven: list[bool] = proven + [False] * (len(request.queued) - len(proven))
        self.results: list[TrainedRelease] = list(request.results)
        self.released = request.released
        self.running = ""
        self.submitting = 0  # token-checked submissions whose handler awaits the check: not idle meanwhile
        self._bounded: bool | None = None

    def _is_bounded(self) -> bool:
        if self._bounded is None:
            self._bounded = workflow.patched(BOUNDED)
        return self._bounded

    def _full(self, by_update: bool = False) -> str:
        """Why no submission is accepted now ("" when one is): maxQueued wait, or the history is so near its
        limit that the train continues as new once the running release ends (a refused update is not in
        the history; an accepted one is, even when its handler then fails). `by_update`: an idle train near
        its limit takes the update — refused, it would wake nothing (the SDK checks no wait condition in an
        activation of rejected updates only, so the loop, which last looked a few events earlier, never sees
        the limit: run 58 saw a train refuse forever); accepted, it wakes the loop, which continues as new
        carrying it (the headroom has room for one). Idle: nothing running, waiting or being checked (a
        token's check awaits). A signal is dropped there as before: recorded histories replay the same."""
        if len(self.queued) >= self.request.max_queued:
            return (f"the train has {len(self.queued)} releases waiting (maxQueued {self.request.max_queued}): "
                    f"submit again once one has started")
        idle = not self.running and not self.queued and not self.submitting
        if self._near_limit() and not (by_update and idle):  # read-only: the validator may ask (never patched)
            return "the train continues as new once the running release ends: submit again then"
        return ""

    def _near_limit(self) -> bool:
        info = workflow.info()
        return info.get_current_history_length() + room(self.request.continue_after_events,
                                                        self.request.max_queued) >= self.request.continue_after_events

    @workflow.query(name="status", description="the train: what runs, what waits, what ran")
    def status(self) -> TrainStatus:
        return TrainStatus(name=self.request.name, environment=self.request.environment, running=self.running,
                           queued=[r.spec.artifact.version or r.version for r in self.queued], released=self.released, runs=self.request.runs,
                           results=self.results)

    def _problem(self, submit: SubmitRelease) -> str:
        if not submit.by.strip():
            return "submit: say who submits (by)"
        if submit.release.metadata.environment != self.request.environment:
            return (f"the train runs releases of {self.request.environment}, not "
                    f"{submit.release.metadata.environment}")
        return ""

    @workflow.update(name="submit", description='Queue a Release on this train. {"release": {...}, "by": "you"}')
    async def submit(self, submit: SubmitRelease) -> SubmitResult:
        wanted = self._wanted(submit)
        proven = None
        full = self._full(by_update=True) if self._is_bounded() else ""
        if full:  # another submission of the same task took the last place, or the history nears its limit
            raise ApplicationError(full, type="TrainFull", non_retryable=True)
        if isinstance(wanted, tuple) and workflow.patched(SUBMITTER_PROVEN):  # the validator saw a token
            self.submitting += 1
            try:
                proven = await verify_start(wanted[1], submit.starter_token, submit.release.rollout_id, submit.release)
            finally:
                self.submitting -= 1
            if isinstance(proven, str):
                raise ApplicationError(f"submit: {proven} ({wanted[0]})", type="InvalidDecision", non_retryable=True)
        self._queue(submit, proven.name if proven else None)
        ahead = len(self.queued) - 1 + (1 if self.running else 0)
        return SubmitResult(accepted=True, position=ahead,
                            workflow_id=f"{submit.release.rollout_id}/{self.released + ahead + 1}")

    @submit.validator
    def _validate_submit(self, submit: SubmitRelease) -> None:
        wanted = self._wanted(submit)
        problem = self._problem(submit) or (wanted if isinstance(wanted, str) else "")
        full = "" if problem else self._full(by_update=True)
        problem = problem or full
        if not problem and wanted and not submit.starter_token.strip():
            problem = (f"{wanted[0]} forbids self-approval under identity: the submitter must be proven by an ID "
                       f"token from {wanted[1].issuer} (--id-token-file, $ROLLOUT_ID_TOKEN, or a CI job's OIDC token)")
        if problem:
            raise ApplicationError(problem, type="TrainFull" if full else "InvalidDecision", non_retryable=True)

    @workflow.signal(name="submit")
    def submit_signal(self, submit: SubmitRelease) -> None:
        """The Web UI's door: a release whose submitter must be proven is refused here (submit it by update,
        `rollout release publish --train`, whose handler checks the token)."""
        if not self._problem(submit) and not (self._wanted(submit) and workflow.patched(UNPROVEN_REFUSED)) and \
                not (self._is_bounded() and self._full()):
            self._queue(submit)

    @staticmethod
    def _wanted(submit: SubmitRelease) -> tuple | str | None:
        """The identity the submitter must prove (models/starter.py), or why the release's approvals disagree."""
        try:
            return starter_identity(submit.release)
        except ValueError as error:
            return str(error)

    def _queue(self, submit: SubmitRelease, proven: str | None = None) -> None:
        self.queued.append(submit.release)
        self.queued_by.append(proven or submit.by.strip())
        self.queued_proven.append(proven is not None)

    def _long(self) -> bool:
        info = workflow.info()
        if self._is_bounded():
            return info.is_continue_as_new_suggested() or self._near_limit()
        return info.is_continue_as_new_suggested() or \
            info.get_current_history_length() + HEADROOM >= self.request.continue_after_events

    @workflow.run
    async def run(self, request: TrainInput) -> TrainStatus:
        self._is_bounded()  # decided once, before any wait
        while True:
            workflow.set_current_details(f"release train {request.environment}/{request.name}: "
                                         f"{self.released} released, {len(self.queued)} queued; waiting for `submit`")
            await workflow.wait_condition(lambda: bool(self.queued) or self._long())
            if self._long():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(TrainInput(
                    name=request.name, environment=request.environment, queued=self.queued, queued_by=self.queued_by,
                    queued_proven=self.queued_proven,
                    released=self.released,
                    results=self.results[-KEPT_RESULTS:], runs=request.runs + 1,
                    continue_after_events=request.continue_after_events, max_queued=request.max_queued))
            release, by, proven = self.queued.pop(0), self.queued_by.pop(0), self.queued_proven.pop(0)
            await self._run_one(release, by, proven)

    async def _run_one(self, release: Release, by: str, proven: bool = False) -> None:
        """`by`: who submitted it, the initiator its approvals' forbidSelfApproval refuses (`proven`: as an ID
        token proved it; the release inherits that as a child)."""
        child_id = f"{release.rollout_id}/{self.released + 1}"
        version = release.spec.artifact.version or release.spec.artifact.variant or release.version
        self.running = child_id
        workflow.set_current_details(f"running {child_id}: {release.version} → {release.target_description}")
        try:
            start = names.start_options(release, workflow_id=child_id) if workflow.patched(SEARCHABLE) else \
                {"id": child_id, "id_reuse_policy": WorkflowIDReusePolicy.ALLOW_DUPLICATE}  # started before
            ended: RolloutStatus = await workflow.execute_child_workflow(
                StagedRelease.run, ReleaseInput(release=release, requested_by=f"train {self.request.name}", initiator=by,
                                                initiator_proven=proven), **start,
                static_summary=f"release {release.version} → {release.target_description}")
            result = TrainedRelease(workflow_id=child_id, version=version, phase=ended.phase,
                                    reason=ended.reason, finished_at=ended.finished_at)
        except ChildWorkflowError as error:
            result = TrainedRelease(workflow_id=child_id, version=version, phase=Phase.DEGRADED,
                                    reason=str(error.cause or error), finished_at=workflow.now())
        self.results = [*self.results, result][-KEPT_RESULTS:]
        self.released += 1
        self.running = ""
