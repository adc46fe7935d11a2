"""Webhooks during a rollout (Flagger's types), each call one activity: checks that fail the rollout,
gates that wait (durable timers) until the hook says yes, a rollback hook polled beside the steps,
and event notifications whose answers are ignored."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.webhooks import WebhookActivities
    from models.status import Phase, Reason
    from models.webhooks import Webhook, WebhookAnswer, WebhookCall
    from workflows.context import Control
    from workflows.errors import WebhookFailed

CALL = {"start_to_close_timeout": timedelta(minutes=2),
        "retry_policy": RetryPolicy(maximum_attempts=3, non_retryable_error_types=["Invalid"])}


class Webhooks:
    def __init__(self, control: Control, hooks: list[Webhook]):
        self.control, self.hooks = control, hooks
        self.rollback_task: asyncio.Task | None = None
        self.rolled_back = ""

    def of(self, kind: str) -> list[Webhook]:
        return [h for h in self.hooks if h.type == kind]

    def payload(self, hook: Webhook, event: str) -> dict:
        s = self.control.status
        return {"name": s.name, "namespace": getattr(self.control.rollout.spec.target.chosen, "namespace", ""),
                "phase": s.phase.value, "type": hook.type, "event": event, "rolloutId": s.rollout_id,
                "step": s.current_step, "weight": s.canary_weight, "image": s.image, "metadata": hook.metadata}

    async def _call(self, hook: Webhook, event: str) -> WebhookAnswer:
        return await workflow.execute_activity_method(
            WebhookActivities.call_webhook, WebhookCall(hook=hook, payload=self.payload(hook, event)),
            summary=f"{hook.type} webhook {hook.name}", **CALL)

    async def check(self, kind: str, event: str) -> None:
        """Every hook of this kind must answer 2xx, or the rollout fails (WebhookFailed)."""
        for hook in self.of(kind):
            answer = await self._call(hook, event)
            self.control.record("webhook", f"{kind} {hook.name}: {answer.status}")
            if not answer.ok:
                raise WebhookFailed(f"{kind} webhook {hook.name} answered {answer.status or 'nothing'}: "
                                    f"{answer.message}".rstrip(": "))

    async def gate(self, kind: str, index: int) -> None:
        """Wait until every hook of this kind answers 2xx, asking every `interval`; abort ends the wait."""
        for hook in self.of(kind):
            while True:
                answer = await self._call(hook, kind)
                if answer.ok:
                    self.control.record("webhook", f"{kind} {hook.name}: {answer.status}")
                    break
                self.control.change_phase(Phase.PAUSED, Reason.WAITING_FOR_WEBHOOK.value,
                                       f"waiting for the {kind} webhook {hook.name} ({answer.status or 'unreachable'})")
                await self.control.sleep_unless_aborted(hook.interval, f"{kind} webhook")

    async def notify(self, event: str) -> None:
        for hook in self.of("event"):
            await self._call(hook, event)

    async def finished(self) -> None:
        """post-rollout and event hooks when the rollout has ended (their answers are only recorded)."""
        await self.stop()
        for hook in self.of("post-rollout"):
            answer = await self._call(hook, "post-rollout")
            self.control.record("webhook", f"post-rollout {hook.name}: {answer.status}")
        await self.notify(f"finished {self.control.status.phase.value} {self.control.status.reason}".strip())

    def watch_rollback(self) -> None:
        if self.of("rollback"):
            self.rollback_task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        hooks = self.of("rollback")
        while self.control.abort_requested is None:
            for hook in hooks:
                answer = await self._call(hook, "rollback")
                if answer.ok:
                    self.rolled_back = f"rollback webhook {hook.name} asked for it"
                    self.control.request_abort(self.rolled_back, by=f"webhook:{hook.name}")
                    return
            await workflow.sleep(min(h.interval for h in hooks), summary="rollback webhook poll")

    async def stop(self) -> None:
        if self.rollback_task is not None and not self.rollback_task.done():
            self.rollback_task.cancel()
            try:
                await self.rollback_task
            except asyncio.CancelledError:
                pass
