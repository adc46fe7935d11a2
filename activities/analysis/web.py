"""Web provider: an HTTP GET or POST (httpx) whose JSON answer (or a dotted path into it) is the
result. Timeouts and 5xx are Error measurements; a 4xx is the check answering "no" and is judged
as the result `{"status": <code>}`."""

from __future__ import annotations

from typing import Any

import httpx
from temporalio.exceptions import ApplicationError

from activities.analysis import EmptyResult
from activities.secrets import reveal
from models.analysis import Metric, fill


class WebProvider:
    def __init__(self, http: httpx.Client):
        self.http = http

    def measure(self, metric: Metric, args: dict[str, str]) -> tuple[Any, str]:
        web = metric.provider.web
        url = fill(web.url, args)  # as shown: `{{secrets.NAME}}` stays a placeholder in what is returned
        headers = {k: reveal(fill(v, args)) for k, v in web.headers.items()}
        body = reveal(fill(web.body, args)) if web.body is not None else None
        try:
            response = self.http.request(web.method, reveal(url), headers=headers, content=body,
                                     timeout=web.timeout_seconds)
        except httpx.HTTPError as error:
            raise ApplicationError(f"metric {metric.name}: {web.method} {url}: {type(error).__name__}",
                                   type="Unavailable") from None
        if response.status_code >= 500:
            raise ApplicationError(f"metric {metric.name}: {web.method} {url}: {response.status_code}",
                                   type="Unavailable")
        try:
            value: Any = response.json()
        except ValueError:
            raise EmptyResult(f"{url} answered {response.status_code} without JSON", url) from None
        for part in [p for p in web.json_path.split(".") if p]:
            if isinstance(value, dict) and part in value:
                value = value[part]
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                raise EmptyResult(f"{url}: no {web.json_path!r} in the answer", url)
        return value, f"{web.method} {url}"
