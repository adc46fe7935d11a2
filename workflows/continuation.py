"""Continue-as-new for rollouts that wait a long time.

A canary paused for days with a background analysis measuring every minute, or an approval reminding
every hour, adds events to its history all the while; Temporal ends a workflow whose history passes
its limit. So at a wait that is safe to re-enter — a pause step, an approval step, a hold at a step
boundary — once the server suggests it (or the history has `continueAfterEvents` events), the wait
raises `ContinueAsNew`; the strategy hands its state to a new run (`Resume`) and the new run enters
the same wait again: a timed pause keeps its end, an approval keeps its votes, a hold its holder, the
background analysis its counts. Decisions that arrive meanwhile wait for the new run (Temporal keeps
them). Runs recorded before this existed replay unchanged (`workflow.patched`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.approvals import PendingApproval
    from models.identity import LEEWAY
    from models.status import Resume, RolloutInput, RunInput

KEPT_HISTORY_ENTRIES = 500  # the status' own step history carried to the next run (the newest ones)
PATCH = "continue-as-new"
TOKENS_KEPT = "used-tokens-kept-across-runs"
RESUME_CONTINUED = "resume-only-when-continued"  # a `resume` in a first run's input is refused (not trusted)


def continued_run() -> bool:
    """The server's word that this run was continued as new by the one before (not a first run, a cron run
    or a retry, whose input whoever started them wrote): only then is state carried in the input trusted."""
    info = workflow.info()
    return info.continued_run_id is not None and info.attempt == 1 and not info.cron_schedule


class ContinueAsNew(Exception):
    """Raised by a wait that may be re-entered, once the history is long; carries the wait's state."""

    def __init__(self) -> None:
        super().__init__("continue as new")
        self.paused_until: datetime | None = None
        self.approval: PendingApproval | None = None


class Continuation:
    """Mixed into RolloutControl: when a wait may end in a new run, and how the run is handed over."""

    def init_continuation(self, request: RunInput) -> None:
        """Only a strategy's run (RolloutInput) continues as new; the other workflows never wait that long."""
        resume = request.resume if isinstance(request, RolloutInput) else None
        # A `resume` handed to any other run is whoever started it saying "past the approval": not taken
        # (begin() ends the run); asked only then, so the marker is in those runs' histories alone.
        self.forged_resume = resume is not None and not continued_run() and workflow.patched(RESUME_CONTINUED)
        self.resume: Resume | None = None if self.forged_resume else resume
        self.continue_after = request.continue_after_events if isinstance(request, RolloutInput) else 10_000
        self.may_continue = False  # set by the strategy (patched) for runs that support it
        self.continuable = False  # True while in a wait that may be re-entered in a new run

    @contextlib.contextmanager
    def waiting_long(self) -> Iterator[None]:
        """Around a wait that a new run can re-enter (a pause or approval step, a hold at a boundary)."""
        self.continuable = True
        try:
            yield
        finally:
            self.continuable = False

    def continue_due(self) -> bool:
        if not (self.may_continue and self.continuable):
            return False
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() >= self.continue_after

    def resuming(self, index: int) -> bool:
        """This run re-enters the wait of step `index` (its start is already recorded)."""
        return self.resume is not None and self.resume.step == index

    def take_resumed(self, index: int) -> Resume | None:
        """The hand-over, if this run resumes the wait of step `index` (taken once)."""
        if not self.resuming(index):
            return None
        resume, self.resume = self.resume, None
        return resume

    def remaining_pause(self, index: int, duration: timedelta | None) -> timedelta | None:
        """A timed pause resumed in a new run goes on until its original end."""
        resume = self.take_resumed(index)
        if resume is None or resume.paused_until is None or duration is None:
            return duration
        return max(resume.paused_until - workflow.now(), timedelta(0))

    def _kept_decisions(self, decisions: list) -> list:
        """The newest decisions, and before them every accepted vote whose ID token has not expired: each
        token counts once per rollout, and refused signals must not push the record of its use out."""
        older, newest = decisions[:-KEPT_HISTORY_ENTRIES], decisions[-KEPT_HISTORY_ENTRIES:]
        if not older or not workflow.patched(TOKENS_KEPT):
            return newest
        now = workflow.now()
        return [d for d in older if d.accepted and d.token_sha256
                and (d.token_expires is None or d.token_expires > now - LEEWAY)] + newest

    async def continue_as_new(self, wait: ContinueAsNew, step: int, **state) -> None:
        """Hand the rollout to a new run that resumes the wait at `step`. Never returns."""
        if self.notifier:
            await self.notifier.drain()
        await workflow.wait_condition(workflow.all_handlers_finished)
        s = self.status
        s.runs += 1
        self.record("continued-as-new", f"run {s.runs}: the history had {workflow.info().get_current_history_length()} "
                                        "events", step=step)
        s.history = s.history[-KEPT_HISTORY_ENTRIES:]
        s.decisions = self._kept_decisions(s.decisions)
        resume = Resume(status=s, step=step, paused_until=wait.paused_until, approval=wait.approval, held=self.pending.held,
                        groups=self.groups, **state)
        workflow.continue_as_new(RolloutInput(rollout=self.rollout, requested_by=self._requested_by, resume=resume,
                                              initiator=self.initiator if self.initiator != self._requested_by else "",
                                              continue_after_events=self.continue_after))
