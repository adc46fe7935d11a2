"""Webhooks in the spec (Flagger's types) and their wire models."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field

from models.durations import Duration
from models.specbase import DnsLabel, Message, SpecModel

HookType = Literal["pre-rollout", "rollout", "confirm-rollout", "confirm-promotion", "post-rollout", "rollback", "event"]


class Webhook(SpecModel):
    """`pre-rollout` (before traffic moves; not 2xx: the rollout fails), `rollout` (before each traffic
    step; not 2xx: roll back), `confirm-rollout` / `confirm-promotion` (gates, asked every `interval`
    until 2xx), `post-rollout` (when it ends), `rollback` (asked every `interval`; 2xx rolls back),
    `event` (every step and the end, as JSON; answers ignored)."""

    name: DnsLabel
    type: HookType
    url: str = Field(pattern=r"^https?://")
    timeout: Duration = Field(default_factory=lambda: timedelta(seconds=10))
    interval: Duration = Field(default_factory=lambda: timedelta(seconds=10), description="gates and rollback polls")
    metadata: dict[str, str] = Field(default_factory=dict)


class WebhookCall(Message):
    hook: Webhook
    payload: dict


class WebhookAnswer(Message):
    status: int = Field(description="HTTP status; 0 when the hook could not be reached")
    message: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300
