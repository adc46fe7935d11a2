"""The control plane a rollout workflow owns: its status (the model, the Web UI's current details, the
search attributes scripts list rollouts by), the waits (pauses, holds, execution windows, abort-aware
timers, activities an abort interrupts), the approval before anything changes, and the end of the run
(Healthy with its rollback window, or Degraded), with continue-as-new at long waits.

A workflow composes it — `self.control = RolloutControl(request, supported)` — with the decision
handlers it carries (workflows/decisions.py) and the `StatusQuery`; it calls `start_step`, `pause`,
`run_interruptible` and `finish`, and never touches details or search attributes itself. Nothing here
knows what the target is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from models import names
    from models.approvals import ApprovalPolicy
    from models.durations import format_duration
    from models.identity import SigningKeys
    from models.pipeline import PipelineInput
    from models.release import ReleaseInput
    from models.schedule import ExecutionWindows
    from models.status import (
        AbortRequest,
        ControlResult,
        HistoryEntry,
        Phase,
        Reason,
        RolloutStatus,
        RunInput,
        WindowRunInput,
        target_status,
    )
    from workflows import metrics
    from workflows.approval import await_approval, resolve_groups
    from workflows.context import Pending
    from workflows.continuation import Continuation, ContinueAsNew
    from workflows.decisions import DecisionRules
    from workflows.details import details
    from workflows.errors import RolloutAborted
    from workflows.notify import Notifier
    from workflows.starter import prove_starter


STARTS = ("rollout", "release", "pipeline")  # the runs that change a target (the others act on one: undo, window, ...)


class StatusQuery:
    """The `status` query every rollout workflow answers (its control's status model)."""

    control: RolloutControl

    @workflow.query(name="status", description="the rollout's status: phase, steps, weights, approvals, decisions")
    def get_status(self) -> RolloutStatus:
        return self.control.status


class RolloutControl(Continuation):
    def __init__(self, request: RunInput | ReleaseInput | PipelineInput, supported: frozenset[str]) -> None:
        rollout = request.document  # a Rollout, a Release or a Pipeline: the same few fields (models/plan.py)
        self.rollout = rollout
        self.pending = Pending()
        self.rules = DecisionRules(self, supported)
        self.approval_policy: ApprovalPolicy | None = None
        self.signing_keys: SigningKeys | None = None
        self.approval_steps: list[int] = []
        self.groups: dict[str, list[str]] = {}
        self.notifier = Notifier(self) if rollout.spec.notifications else None
        self.on_set_weight: Callable[[int], Awaitable[None]] | None = None  # a canary routes `setWeight` here
        # the strategy's reader of its pods' template hashes (valueFrom.podTemplateHashValue; workflows/observe.py)
        self.template_hash: Callable[[str], Awaitable[str]] | None = None
        self._requested_by = request.requested_by
        self.initiator = request.initiator or request.requested_by  # whom forbidSelfApproval refuses
        self._starter_token = request.starter_token  # proven in begin(), then dropped; never in the status
        self._inherited = request.initiator_proven
        self._action = request.action
        self._search_attributes: tuple[str, int] | None = None
        self.status = RolloutStatus(
            rollout_id=rollout.rollout_id,
            name=rollout.metadata.name,
            environment=rollout.metadata.environment,
            strategy=rollout.strategy_name,
            target=rollout.target_description,
            image=rollout.version,
            started_by=request.requested_by,
            initiator=self.initiator,
            spec_digest=rollout.digest(),
            delivery=target_status(rollout),
        )
        self.init_continuation(request)
        resume = self.resume  # a continued run's only (workflows/continuation.py)
        if resume is not None:  # a new run of a rollout that waited long: pick up where it was
            self.status = resume.status
            self.pending.held, self.groups = resume.held, resume.groups

    def request_abort(self, reason: str, by: str) -> None:
        """The workflow itself aborts (e.g. a failed background analysis), unless already aborting."""
        if self.pending.abort is None and not self.status.phase.finished:
            self.pending.abort = AbortRequest(reason=reason, by=by)
            self.record("abort-requested", reason, by=by)

    def accept_abort(self, request: AbortRequest) -> None:
        self.pending.abort = request
        self.record("abort-requested", request.reason, by=request.by)

    def result(self, message: str) -> ControlResult:
        s = self.status
        return ControlResult(accepted=True, phase=s.phase, current_step=s.current_step, message=message)

    def next_approval_step(self) -> int | None:
        """The index of an approval still ahead (or open), for `promote --full`'s refusal."""
        if self.status.approval is not None:
            return self.status.approval.step
        return next((i for i in self.approval_steps if i >= self.status.current_step), None)

    # ---- what strategies call ---------------------------------------------------------------------

    @property
    def abort_requested(self) -> AbortRequest | None:
        return self.pending.abort

    def record(self, event: str, detail: str = "", by: str = "", step: int | None = None) -> None:
        step = self.status.current_step if step is None else step
        entry = HistoryEntry(at=workflow.now(), event=event, step=step, detail=detail, by=by)
        self.status.history.append(entry)

    def start(self, total_steps: int) -> None:
        self.status.total_steps = total_steps
        self.status.started_at = workflow.now()
        if self._action in STARTS:
            self.status.steps = self.rollout.spec.step_descriptions()
        self.record("started", self.rollout.version, by=self._requested_by)
        metrics.started(self.status)
        self.change_phase(Phase.PROGRESSING, message="starting")

    def start_step(self, index: int, description: str) -> None:
        self.status.current_step = index
        self.record("step-started", description, step=index)
        self.change_phase(Phase.PROGRESSING, message=f"step {index + 1}/{self.status.total_steps}: {description}")

    def show(self, phase: Phase, reason: str = "", message: str = "") -> bool:
        """The status, the search attributes and the Web UI's details say `phase` and why; True when the
        phase changed."""
        s = self.status
        changed = phase is not s.phase
        s.phase, s.reason, s.message = phase, reason, message
        attributes = (phase.value, s.current_step)
        if attributes != self._search_attributes:
            workflow.upsert_search_attributes(
                [names.ROLLOUT_PHASE.value_set(phase.value), names.ROLLOUT_STEP.value_set(s.current_step)]
            )
            self._search_attributes = attributes
        workflow.set_current_details(details(self.status))
        metrics.shown(s)
        return changed

    def change_phase(self, phase: Phase, reason: str = "", message: str = "") -> None:
        """Where a rollout decides its phase (Progressing, Paused): shown, and a change announced to the
        notification channels that want `phase-changed`."""
        if self.show(phase, reason, message):
            self.announce("phase-changed", "info", f"{phase.value}{' (' + reason + ')' if reason else ''}: {message}")

    def announce(self, event: str, severity: str, text: str) -> None:
        """A notification to the spec's channels that want it (none configured: nothing)."""
        if self.notifier:
            self.notifier.send(event, severity, text)

    async def begin(self) -> RolloutStatus | None:
        """Before a strategy changes anything: prove who started it where an approval asks for that
        (workflows/starter.py), resolve the approver groups (a missing group fails here, not at the
        approval), wait for the execution window, and pass `spec.approval`. Returns the final status if
        the rollout ends here."""
        spec = self.rollout.spec
        if self._action not in STARTS:
            return None
        if self.forged_resume:
            return self.finish(Phase.DEGRADED, Reason.INVALID_START.value,
                               "resume is set by a rollout when it continues as new; a start that gives one would "
                               "skip what came before: refused (nothing was changed)")
        token, self._starter_token = self._starter_token, ""
        unproven = await prove_starter(self, token, self._inherited)
        if unproven:
            return self.finish(Phase.DEGRADED, Reason.INVALID_START.value, f"{unproven} (nothing was changed)")
        try:
            groups = sorted({g for _, policy in spec.approvals() for g in policy.local_groups})
            if groups:
                self.groups = await resolve_groups(groups)
            await self.wait_for_window(0)
            if spec.approval is not None:
                await await_approval(self, 0, spec.approval, "approval before the rollout starts")
        except RolloutAborted as aborted:
            return self.finish(Phase.DEGRADED, aborted.reason.value, f"{aborted} (nothing was changed)")
        except ActivityError as error:
            return self.finish(Phase.DEGRADED, Reason.INVALID_POLICY.value, failure_reason(error)[1])
        return None

    async def step_gate(self, index: int) -> None:
        """At a step boundary: wait while held by `rollout pause`, and for the execution window."""
        await self.hold_point()
        await self.wait_for_window(index)

    async def hold_point(self) -> None:
        if self.pending.held is None:
            return
        self.change_phase(Phase.PAUSED, Reason.PAUSED_BY_USER.value,
                       f"held by {self.pending.held.by}: `rollout resume {self.status.rollout_id}` to go on")
        await self.wait_deciding(lambda: self.pending.held is None)
        self.change_phase(Phase.PROGRESSING, message="resumed")

    async def wait_for_window(self, index: int, windows: ExecutionWindows | None = None) -> None:
        """Wait for the spec's execution windows (or `windows`, a pipeline gate's) to allow step `index`."""
        windows = windows or self.rollout.spec.execution_windows
        if windows is None:
            return
        now = workflow.now()
        at, why = windows.next_allowed(now)
        if at <= now:
            return
        self.status.paused_until = at
        what = f"waiting for the execution window ({why}): step {index + 1} starts {windows.describe(at)}"
        self.record("window-wait", what, step=index)
        self.change_phase(Phase.PAUSED, Reason.OUTSIDE_WINDOW.value, what)
        try:
            await self.sleep_unless_aborted(at - now, "execution window")
        finally:
            self.status.paused_until = None
        self.change_phase(Phase.PROGRESSING, message=f"execution window open at {windows.describe(workflow.now())}")

    async def wait_deciding(self, done: Callable[[], bool], timeout: timedelta | None = None, summary: str = "") -> bool:
        """Wait until `done()`, applying `setWeight` overrides meanwhile; an abort raises RolloutAborted.
        Returns False when `timeout` passed first."""
        deadline = None if timeout is None else workflow.now() + timeout
        p = self.pending
        while True:
            left = None if deadline is None else deadline - workflow.now()
            if left is not None and left <= timedelta(0):
                return False
            try:
                await workflow.wait_condition(
                    lambda: done() or p.abort is not None or p.weight is not None or self.continue_due(),
                    timeout=left, timeout_summary=summary or None)
            except TimeoutError:
                return False
            if p.abort is not None:
                raise RolloutAborted(p.abort.reason)
            if p.weight is None:
                if not done() and self.continue_due():
                    raise ContinueAsNew()
                return True
            request = p.weight
            try:
                assert self.on_set_weight is not None, "setWeight is accepted only where a strategy routes it"
                await self.on_set_weight(request.weight)
                self.record("weight-override", f"{request.weight}%", by=request.by)
            finally:
                p.weight = None

    async def pause(self, index: int, duration: timedelta | None, what: str = "", reason: Reason | None = None) -> None:
        """A pause step: a durable timer, or (no duration) until promoted. Abort ends it at once.
        `what` says what the pause is for (the status message and Web UI details)."""
        if duration is not None and duration <= timedelta(0):
            return
        self.pending.in_pause, self.pending.promote = True, None
        if duration is None:
            self.status.paused_until = None
            self.change_phase(Phase.PAUSED, (reason or Reason.WAITING_FOR_PROMOTE).value, what or "waiting for promote")
        else:
            self.status.paused_until = workflow.now() + duration
            self.change_phase(Phase.PAUSED, Reason.TIMED_PAUSE.value, what or f"paused for {format_duration(duration)}")
        try:
            if not await self.wait_deciding(lambda: self.pending.promote is not None, duration, f"pause step {index + 1}"):
                self.record("pause-ended", f"after {format_duration(duration)}", step=index)
        except ContinueAsNew as wait:
            wait.paused_until = self.status.paused_until
            raise
        finally:
            self.pending.in_pause, self.pending.promote = False, None
            self.status.paused_until = None
        self.change_phase(Phase.PROGRESSING, message=f"step {index + 1} done")

    async def sleep_unless_aborted(self, delay: timedelta, summary: str) -> None:
        """A durable timer that an abort ends at once (raising RolloutAborted)."""
        try:
            await workflow.wait_condition(lambda: self.pending.abort is not None, timeout=delay, timeout_summary=summary)
        except TimeoutError:
            return
        raise RolloutAborted(self.pending.abort.reason)

    async def run_interruptible(self, handle: workflow.ActivityHandle) -> Any:
        """Await an activity, unless an abort arrives first: then cancel it, wait for it to stop, abort."""
        try:
            await workflow.wait_condition(lambda: handle.done() or self.pending.abort is not None)
        except asyncio.CancelledError:  # the caller was cancelled (a skipped analysis): so is the activity
            handle.cancel()
            handle.add_done_callback(lambda h: h.cancelled() or h.exception())  # its end is expected: not an error
            raise
        if not handle.done():
            handle.cancel()
            try:
                await handle
            except (ActivityError, CancelledError, asyncio.CancelledError):
                pass
            raise RolloutAborted(self.pending.abort.reason if self.pending.abort else "aborted")
        return handle.result()

    async def healthy(self, message: str) -> RolloutStatus:
        """End Healthy; with `spec.rollbackWindow`, first open the window (its own workflow, left running)."""
        window = self.rollout.spec.rollback_window
        if window is not None and self._action == "rollout":
            window_id = names.window_id(self.status.rollout_id)
            try:
                await workflow.start_child_workflow(
                    "RollbackWindow",
                    WindowRunInput(rollout=self.rollout, requested_by=self._requested_by),
                    id=window_id,
                    parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                    search_attributes=TypedSearchAttributes([
                        SearchAttributePair(names.ROLLOUT_NAME, self.status.name),
                        SearchAttributePair(names.ROLLOUT_ENVIRONMENT, self.status.environment),
                        SearchAttributePair(names.ROLLOUT_STRATEGY, "rollbackWindow"),
                    ]),
                    static_summary=f"rollback window {format_duration(window.duration)} {self.status.target}",
                )
                self.record("rollback-window", f"{window_id}: previous revisions warm for {format_duration(window.duration)}")
            except WorkflowAlreadyStartedError:
                self.record("rollback-window", f"{window_id} is still open from an earlier rollout: not reopened")
        return self.finish(Phase.HEALTHY, message=message)

    def finish(self, phase: Phase, reason: str = "", message: str = "") -> RolloutStatus:
        self.status.finished_at = workflow.now()
        if phase is Phase.HEALTHY:
            self.status.current_step = self.status.total_steps
        self.record("finished", f"{phase.value} {reason}".strip())
        self.show(phase, reason, message)
        metrics.finished(self.status)
        healthy = phase is Phase.HEALTHY
        self.announce("completed" if healthy else "aborted", "info" if healthy else "critical",
                      f"{phase.value}{' (' + reason + ')' if reason else ''}: {message}")
        return self.status

    async def wrap_up(self, status: RolloutStatus) -> RolloutStatus:
        """Before the workflow returns: notifications sent, every decision handler finished."""
        if self.notifier:
            await self.notifier.drain()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return status

def failure_reason(error: BaseException) -> tuple[str, str]:
    """(reason, message) for a failed activity: the ApplicationError type names the reason."""
    cause = error.__cause__ if isinstance(error, ActivityError) else error
    if isinstance(cause, ApplicationError):
        reason = {
            "ProgressDeadlineExceeded": Reason.PROGRESS_DEADLINE,
            "NotFound": Reason.TARGET_INVALID,
            "Invalid": Reason.TARGET_INVALID,
            "InvalidTarget": Reason.TARGET_INVALID,
            "StoreRejected": Reason.STORE_REJECTED,
            "StoreUnauthorized": Reason.STORE_UNAUTHORIZED,
        }.get(cause.type or "", Reason.FAILED)
        return reason.value, cause.message
    return Reason.FAILED.value, str(cause or error)
