"""Notifications: one POST per channel to a Slack-compatible incoming webhook (httpx).

A channel's URL carries its token, so it is read here, from `ROLLOUT_NOTIFY_<CHANNEL>` or the YAML
file `$DURABLE_ROLLOUTS_NOTIFY_FILE`, and never passes through the workflow. Channels already sent to
are kept in the heartbeat details, so a retry does not post twice."""

from __future__ import annotations

import os

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.settings import env_name, mapping_file
from models.notifications import NotifyInput

NOTIFY_FILE = "DURABLE_ROLLOUTS_NOTIFY_FILE"
ICONS = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}


def channel_url(channel: str) -> str:
    env = env_name("ROLLOUT_NOTIFY_", channel)
    url = os.environ.get(env) or mapping_file(NOTIFY_FILE).get(channel)
    if url:
        return str(url)
    raise ApplicationError(f"notification channel {channel!r}: set ${env} or list it in ${NOTIFY_FILE}",
                           type="Invalid", non_retryable=True)


def slack_message(note: NotifyInput) -> dict:
    head = f"{ICONS[note.severity]} *{note.rollout_id}* · {note.event}"
    link = f" <{note.link}|Web UI>" if note.link else ""
    return {
        "text": f"{head}: {note.text}",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": f"{head}{link}\n{note.text}"}}],
    }


class NotifyActivities:
    def __init__(self, http: httpx.Client | None = None):
        self._http = http or httpx.Client()

    @activity.defn(name="notify")
    def notify(self, note: NotifyInput) -> list[str]:
        details = activity.info().heartbeat_details
        done: list[str] = list(details[0]) if details else []
        failed = []
        for channel in note.channels:
            if channel in done:
                continue
            url = channel_url(channel)
            try:
                answer = self._http.post(url, json=slack_message(note), timeout=10)
            except httpx.HTTPError as error:
                failed.append(f"{channel}: {type(error).__name__}")
                continue
            if answer.status_code >= 300:
                failed.append(f"{channel}: HTTP {answer.status_code}")
                continue
            done.append(channel)
            activity.heartbeat(done)
        if failed:
            raise ApplicationError("; ".join(failed), type="NotifyFailed")
        return done
