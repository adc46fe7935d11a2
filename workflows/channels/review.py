"""Waiting for a store's verdict (App Review, Microsoft's certification) durably: a timer between
reads, so days of waiting cost a few events; the status says since when and in which state; an
abort ends the wait (nothing was published); a rejection or a wait past the timeout fails the release
with the store's words."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from models.durations import format_duration
    from models.status import Phase, Reason
    from workflows.context import Control


async def await_verdict(control: Control, what: str, state: str, read: Callable[[], Awaitable[str]],
                        passed: tuple[str, ...], failed: tuple[str, ...], poll: timedelta, timeout: timedelta,
                        why: Callable[[str], str], hints: dict[str, str] | None = None) -> str:
    """Read the state every `poll` until it is one of `passed` (returned); `failed` raises with `why(state)`;
    `hints` says in the status what a state waits for (a person, somewhere)."""
    since = workflow.now()
    while state not in passed:
        if state in failed:
            raise ApplicationError(why(state), type="StoreRejected", non_retryable=True)
        waited = workflow.now() - since
        if waited >= timeout:
            hint = f": {hints[state]}" if hints and state in hints else ""
            raise ApplicationError(f"{what}: no verdict after {waited} ({state}{hint})", type="StoreRejected",
                                   non_retryable=True)
        control.status.paused_until = None
        control.change_phase(Phase.PAUSED, Reason.IN_REVIEW.value,
                             f"waiting for {what} since {since:%Y-%m-%d %H:%M} UTC ({state}"
                             f"{': ' + hints[state] if hints and state in hints else ''}); "
                             f"next look in {format_duration(poll)}")
        await control.wait_deciding(lambda: False, poll, what)
        state = await read()
    control.record("approved", f"{what}: {state} after {workflow.now() - since}")
    control.change_phase(Phase.PROGRESSING, message=f"{what}: {state}")
    return state
