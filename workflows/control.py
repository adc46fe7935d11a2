"""What every rollout workflow shares: the status model and its query, the human controls (`promote`,
`abort` as CLI updates with validators and as Web UI signals with the same meaning), the Web UI's
"current details" text, and the search attributes scripts list rollouts by.

A strategy subclasses `RolloutControl`, calls `start_step`, `pause`, `run_interruptible` and
`finish`, and never touches handlers, details or search attributes itself.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from models import names
    from models.durations import format_duration
    from models.status import (
        AbortRequest,
        ControlResult,
        HistoryEntry,
        Phase,
        PromoteRequest,
        Reason,
        RolloutInput,
        RolloutStatus,
    )


class RolloutAborted(Exception):
    """Raised inside a strategy when a person (or a failure) aborted the rollout."""


class RolloutControl:
    def __init__(self, request: RolloutInput) -> None:
        rollout = request.rollout
        self.rollout = rollout
        self._abort: AbortRequest | None = None
        self._promote: PromoteRequest | None = None
        self._in_pause = False
        self.abort_closed = ""  # set by a strategy when an abort can no longer be honoured, saying why
        self._requested_by = request.requested_by
        self._action = request.action
        self._search_attributes: tuple[str, int] | None = None
        self.status = RolloutStatus(
            rollout_id=rollout.rollout_id,
            name=rollout.metadata.name,
            environment=rollout.metadata.environment,
            strategy=rollout.spec.strategy.name,
            target=rollout.spec.target.describe(),
            image=rollout.spec.image,
        )

    # ---- handlers -------------------------------------------------------------------------------

    @workflow.query(name="status")
    def get_status(self) -> RolloutStatus:
        return self.status

    @workflow.update(name="promote")
    async def promote(self, request: PromoteRequest) -> ControlResult:
        self._accept_promote(request)
        return self._result("promoted")

    @promote.validator
    def _validate_promote(self, request: PromoteRequest) -> None:
        problem = self._promote_problem(request)
        if problem:
            raise ValueError(problem)

    @workflow.signal(name="promote")
    def promote_signal(self, request: PromoteRequest) -> None:
        problem = self._promote_problem(request)
        if problem:
            self.record("signal-ignored", f"promote: {problem}", by=request.by)
        else:
            self._accept_promote(request)

    @workflow.update(name="abort")
    async def abort(self, request: AbortRequest) -> ControlResult:
        self._accept_abort(request)
        return self._result("abort accepted")

    @abort.validator
    def _validate_abort(self, request: AbortRequest) -> None:
        if not request.reason.strip():
            raise ValueError("abort needs a reason")
        problem = self._abort_problem()
        if problem:
            raise ValueError(problem)

    @workflow.signal(name="abort")
    def abort_signal(self, request: AbortRequest) -> None:
        problem = self._abort_problem()
        if problem:
            self.record("signal-ignored", f"abort: {problem}", by=request.by)
        else:
            if not request.reason.strip():
                request = AbortRequest(reason="aborted from the Web UI", by=request.by)
            self._accept_abort(request)

    def _promote_problem(self, request: PromoteRequest) -> str:
        if self.status.phase.finished:
            return f"rollout is already {self.status.phase.value}"
        if self._abort is not None:
            return "rollout is being aborted"
        if not self._in_pause:
            return f"rollout is not paused (phase {self.status.phase.value}, step {self.status.current_step})"
        if self.status.reason == Reason.WAITING_FOR_APPROVAL.value and not request.by.strip():
            return "an approval must say who approves (by)"
        return ""

    def _abort_problem(self) -> str:
        if self.status.phase.finished:
            return f"rollout is already {self.status.phase.value}"
        if self._abort is not None:
            return "rollout is already being aborted"
        return self.abort_closed

    def _accept_promote(self, request: PromoteRequest) -> None:
        self._promote = request
        self.record("promoted", f"at step {self.status.current_step + 1}", by=request.by)

    def request_abort(self, reason: str, by: str) -> None:
        """The workflow itself aborts (e.g. a failed background analysis), unless already aborting."""
        if self._abort is None and not self.status.phase.finished:
            self._accept_abort(AbortRequest(reason=reason, by=by))

    def _accept_abort(self, request: AbortRequest) -> None:
        self._abort = request
        self.record("abort-requested", request.reason, by=request.by)

    def _result(self, message: str) -> ControlResult:
        s = self.status
        return ControlResult(accepted=True, phase=s.phase, current_step=s.current_step, message=message)

    # ---- what strategies call ---------------------------------------------------------------------

    @property
    def abort_requested(self) -> AbortRequest | None:
        return self._abort

    def record(self, event: str, detail: str = "", by: str = "", step: int | None = None) -> None:
        step = self.status.current_step if step is None else step
        entry = HistoryEntry(at=workflow.now(), event=event, step=step, detail=detail, by=by)
        self.status.history.append(entry)

    def start(self, total_steps: int) -> None:
        self.status.total_steps = total_steps
        self.status.started_at = workflow.now()
        self.record("started", self.rollout.spec.image, by=self._requested_by)
        self.set_phase(Phase.PROGRESSING, message="starting")

    def start_step(self, index: int, description: str) -> None:
        self.status.current_step = index
        self.record("step-started", description, step=index)
        self.set_phase(Phase.PROGRESSING, message=f"step {index + 1}/{self.status.total_steps}: {description}")

    def set_phase(self, phase: Phase, reason: str = "", message: str = "") -> None:
        s = self.status
        s.phase, s.reason, s.message = phase, reason, message
        attributes = (phase.value, s.current_step)
        if attributes != self._search_attributes:
            workflow.upsert_search_attributes(
                [names.ROLLOUT_PHASE.value_set(phase.value), names.ROLLOUT_STEP.value_set(s.current_step)]
            )
            self._search_attributes = attributes
        workflow.set_current_details(self._details())

    async def pause(self, index: int, duration: timedelta | None, what: str = "", approval: bool = False,
                    reason: Reason | None = None) -> None:
        """A pause step: a durable timer, or (no duration) until promoted. Abort ends it at once.
        `what` says what the pause is for (the status message and Web UI details); an `approval` is an
        open pause whose promote must name who approves."""
        if duration is not None and duration <= timedelta(0):
            return
        self._in_pause, self._promote = True, None
        if duration is None:
            self.status.paused_until = None
            reason = reason or (Reason.WAITING_FOR_APPROVAL if approval else Reason.WAITING_FOR_PROMOTE)
            self.set_phase(Phase.PAUSED, reason.value, what or "waiting for promote")
        else:
            self.status.paused_until = workflow.now() + duration
            self.set_phase(Phase.PAUSED, Reason.TIMED_PAUSE.value, what or f"paused for {format_duration(duration)}")
        try:
            await workflow.wait_condition(
                lambda: self._promote is not None or self._abort is not None,
                timeout=duration,
                timeout_summary=f"pause step {index + 1}",
            )
        except asyncio.TimeoutError:
            self.record("pause-ended", f"after {format_duration(duration)}", step=index)
        finally:
            self._in_pause, self._promote = False, None
            self.status.paused_until = None
        if self._abort is not None:
            raise RolloutAborted(self._abort.reason)
        self.set_phase(Phase.PROGRESSING, message=f"step {index + 1} done")

    async def sleep_unless_aborted(self, delay: timedelta, summary: str) -> None:
        """A durable timer that an abort ends at once (raising RolloutAborted)."""
        try:
            await workflow.wait_condition(lambda: self._abort is not None, timeout=delay, timeout_summary=summary)
        except asyncio.TimeoutError:
            return
        raise RolloutAborted(self._abort.reason)

    async def run_interruptible(self, handle: workflow.ActivityHandle) -> Any:
        """Await an activity, unless an abort arrives first: then cancel it, wait for it to stop, abort."""
        await workflow.wait_condition(lambda: handle.done() or self._abort is not None)
        if not handle.done():
            handle.cancel()
            try:
                await handle
            except (ActivityError, CancelledError, asyncio.CancelledError):
                pass
            raise RolloutAborted(self._abort.reason if self._abort else "aborted")
        return handle.result()

    async def healthy(self, message: str) -> RolloutStatus:
        """End Healthy; with `spec.rollbackWindow`, first open the window (its own workflow, left running)."""
        window = self.rollout.spec.rollback_window
        if window is not None and self._action == "rollout":
            window_id = names.window_id(self.status.rollout_id)
            try:
                await workflow.start_child_workflow(
                    "RollbackWindow",
                    RolloutInput(rollout=self.rollout, requested_by=self._requested_by, action="window"),
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
        self.set_phase(phase, reason, message)
        return self.status

    # ---- Web UI details ---------------------------------------------------------------------------

    def _details(self) -> str:
        s = self.status
        rid = s.rollout_id
        weight = {
            "canary": f" · canary weight {s.canary_weight}%",
            "blueGreen": f" · active: {'preview (new)' if s.canary_weight else 'previous'}",
        }.get(s.strategy, "")
        head = (
            f"**{s.name}** ({s.environment}) · {s.strategy} → `{s.image}`\n\n"
            f"**{s.phase.value}**{' · ' + s.reason if s.reason else ''} · step "
            f"{min(s.current_step + 1, s.total_steps)} of {s.total_steps}{weight}\n\n{s.message}"
        )
        if s.phase.finished:
            return head
        lines = [head, ""]
        if s.phase is Phase.PAUSED:
            lines.append(
                f"**Waiting for promote.** CLI: `rollout promote {rid}` · Web UI: Send Signal "
                f"`promote` with input `{json.dumps({'by': 'your-name'})}`"
            )
        lines.append(
            f"To abort: `rollout abort {rid} --reason \"...\"` · Web UI: Send Signal `abort` with input "
            f"`{json.dumps({'reason': 'why', 'by': 'your-name'})}`"
        )
        return "\n\n".join(lines)


def failure_reason(error: BaseException) -> tuple[str, str]:
    """(reason, message) for a failed activity: the ApplicationError type names the reason."""
    cause = error.__cause__ if isinstance(error, ActivityError) else error
    if isinstance(cause, ApplicationError):
        reason = {
            "ProgressDeadlineExceeded": "ProgressDeadlineExceeded",
            "NotFound": "InvalidTarget",
            "Invalid": "InvalidTarget",
            "InvalidTarget": "InvalidTarget",
        }.get(cause.type or "", "RolloutFailed")
        return reason, cause.message
    return "RolloutFailed", str(cause or error)
