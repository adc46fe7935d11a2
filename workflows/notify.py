"""Sending notifications from a rollout: each event goes, as one activity, to the spec's channels
that want it (by severity and event). A notification that cannot be delivered is recorded in the
history, never fails the rollout; all of them are awaited before the workflow returns."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.notify import NotifyActivities
    from models.notifications import NotifyInput
    from workflows.context import Control

NOTIFY = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(maximum_attempts=5, maximum_interval=timedelta(seconds=30),
                                non_retryable_error_types=["Invalid"]),
}


class Notifier:
    def __init__(self, control: Control):
        self.control = control
        self.sending: list[asyncio.Task] = []

    def send(self, event: str, severity: str, text: str) -> None:
        channels = [c.channel for c in self.control.rollout.spec.notifications if c.wants(event, severity)]
        if channels:
            note = NotifyInput(rollout_id=self.control.status.rollout_id, channels=channels, event=event,
                               severity=severity, text=text)
            self.sending.append(asyncio.create_task(self._send(note)))

    async def _send(self, note: NotifyInput) -> None:
        try:
            await workflow.execute_activity_method(NotifyActivities.notify, note, summary=f"notify {note.event}",
                                                   **NOTIFY)
        except ActivityError as error:
            cause = error.cause.message if error.cause and hasattr(error.cause, "message") else str(error)
            self.control.record("notification-failed", f"{note.event} to {', '.join(note.channels)}: {cause}")

    async def drain(self) -> None:
        while self.sending:
            batch, self.sending = self.sending, []
            await asyncio.gather(*batch)
