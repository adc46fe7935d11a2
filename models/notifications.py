"""Notifications: Slack-compatible incoming webhooks, routed by severity and event.

The spec names a channel; its URL (which carries a token) is read by the activity from
`ROLLOUT_NOTIFY_<CHANNEL>` (upper case, `-` as `_`) or from the YAML file `$DURABLE_ROLLOUTS_NOTIFY_FILE`
(`{channel: url}`), so it never travels through the workflow's input or history.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from models.specbase import DnsLabel, Message, SpecModel

Severity = Literal["info", "warning", "critical"]
SEVERITIES = ("info", "warning", "critical")
EVENTS = ("phase-changed", "approval-requested", "approval-reminder", "approval-decided", "analysis-failed",
          "completed", "aborted")
Event = Literal["phase-changed", "approval-requested", "approval-reminder", "approval-decided", "analysis-failed",
                "completed", "aborted"]


class NotificationChannel(SpecModel):
    channel: DnsLabel = Field(description="its URL comes from ROLLOUT_NOTIFY_<CHANNEL> or $DURABLE_ROLLOUTS_NOTIFY_FILE")
    min_severity: Severity = Field("info", description="send events of this severity and above")
    events: list[Event] = Field(default_factory=list, description="only these events (default: all)")

    def wants(self, event: str, severity: str) -> bool:
        return SEVERITIES.index(severity) >= SEVERITIES.index(self.min_severity) and (
            not self.events or event in self.events)


class NotifyInput(Message):
    rollout_id: str
    channels: list[str]
    event: Event
    severity: Severity
    text: str
    link: str = ""
