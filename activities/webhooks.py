"""Calling a webhook: one POST of the JSON payload (httpx), the answer's status. Never raises for the
hook's own failures (unreachable: status 0) — what a failure means is the workflow's decision. A URL
may carry `{{secrets.NAME}}` (filled in here; messages show the template)."""

from __future__ import annotations

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.secrets import reveal
from models.webhooks import WebhookAnswer, WebhookCall


class WebhookActivities:
    def __init__(self, http: httpx.Client | None = None):
        self._http = http or httpx.Client()

    @activity.defn(name="call_webhook")
    def call_webhook(self, call: WebhookCall) -> WebhookAnswer:
        hook = call.hook
        try:
            url = reveal(hook.url)
        except ApplicationError as error:  # a secret that is not set: the hook cannot be called
            return WebhookAnswer(status=0, message=error.message)
        try:
            answer = self._http.post(url, json=call.payload, timeout=hook.timeout.total_seconds())
        except httpx.HTTPError as error:
            return WebhookAnswer(status=0, message=f"{hook.url}: {type(error).__name__}")
        return WebhookAnswer(status=answer.status_code, message=answer.text[:200])
