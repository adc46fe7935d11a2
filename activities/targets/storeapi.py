"""Calling a store's or an MDM's REST API the one way every channel does: a bearer token from the
store's own sign-in (`TokenSource`, read from the worker's files or environment inside the activity,
never from the workflow), refreshed once on a 401; `Retry-After` honoured on 429/503 (the activity is
retried after the store's delay, not hammered); other 4xx are permanent and carry the store's own
message; 5xx and lost connections are retried.
"""

from __future__ import annotations

import email.utils
import json
import time
from datetime import timedelta
from typing import Any, Protocol

import httpx
from temporalio.exceptions import ApplicationError

MAX_RETRY_AFTER = 600.0  # a store asking for longer still gets asked again within ten minutes


class TokenSource(Protocol):
    def token(self, fresh: bool = False) -> str:
        """A bearer token (cached; `fresh`: a new one, the cached one was refused)."""
        ...


def retry_after(response: httpx.Response, default: float = 5.0) -> float:
    """The store's `Retry-After` in seconds (a number or an HTTP date), capped."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        seconds = parsed.timestamp() - time.time() if parsed is not None else default
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def store_message(response: httpx.Response) -> str:
    """The store's own words for an error: Google's `error.message`, Apple's `errors[].detail`, Graph's
    `error.message`, Partner Center's `message`/`description`; else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return f"{error}: {body.get('error_description', '')}".rstrip(": ")
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return "; ".join(str(e.get("detail") or e.get("title") or e) for e in errors)
        for key in ("message", "description", "detail"):
            if body.get(key):
                return str(body[key])
    return json.dumps(body)[:300]


def raise_for(store: str, what: str, response: httpx.Response) -> None:
    """The ApplicationError for a failed call (nothing for a success)."""
    status = response.status_code
    if status < 400:
        return
    message = f"{store}: {what}: {status} {store_message(response)}"
    if status == 401:
        raise ApplicationError(message + " (after a fresh token)", type="StoreUnauthorized", non_retryable=True)
    if status in (429, 503):
        raise ApplicationError(message, type="StoreThrottled",
                               next_retry_delay=timedelta(seconds=retry_after(response)))
    if status >= 500 or status == 408:
        raise ApplicationError(message, type="StoreUnavailable")
    raise ApplicationError(message, type="StoreRejected", non_retryable=True)


class StoreApi:
    """One store's API: `call` sends with the bearer token, refreshes it once on a 401 and turns
    failures into the errors above. `store` names it in every message ("Google Play")."""

    def __init__(self, store: str, root: str, tokens: TokenSource | None, http: httpx.Client | None = None,
                 timeout: float = 60.0) -> None:
        self.store, self.root, self.tokens = store, root.rstrip("/") + "/", tokens
        self.http = http or httpx.Client()
        self.timeout = timeout

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.root + path.lstrip("/")

    def call(self, method: str, path: str, what: str, *, accept: tuple[int, ...] = (), authorized: bool = True,
             **kwargs: Any) -> httpx.Response:
        """Send one request; statuses in `accept` (a 404 for "is it there?") are answers, not errors."""
        headers = dict(kwargs.pop("headers", None) or {})
        timeout = kwargs.pop("timeout", self.timeout)
        for attempt in range(2):
            if authorized and self.tokens is not None:
                headers["Authorization"] = f"Bearer {self.tokens.token(fresh=attempt == 1)}"
            try:
                response = self.http.request(method, self.url(path), headers=headers,
                                             timeout=timeout, **kwargs)
            except httpx.TransportError as error:
                raise ApplicationError(f"{self.store}: {what}: unreachable ({error})", type="StoreUnavailable") from None
            if response.status_code != 401 or not authorized or self.tokens is None:
                break
        if response.status_code in accept:
            return response
        raise_for(self.store, what, response)
        return response

    def json(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        response = self.call(method, path, what, **kwargs)
        return response.json() if response.content else {}


class UsesStore:
    """The base of a store's activity classes: the API client given to the constructor (tests), or
    built by `build_api` on first use — so a worker without a store's credentials still starts, and
    the credentials are read inside the activity that needs them."""

    def __init__(self, api: Any = None) -> None:
        self._api = api

    def build_api(self) -> Any:
        raise NotImplementedError

    @property
    def api(self) -> Any:
        if self._api is None:
            self._api = self.build_api()
        return self._api


def token_error(store: str, response: httpx.Response) -> ApplicationError:
    """A refused sign-in: permanent for bad credentials (4xx), retried when the token service is down."""
    try:
        raise_for(store, "sign-in", response)
    except ApplicationError as error:
        if response.status_code in (400, 401, 403):
            return ApplicationError(f"{store}: sign-in refused: {store_message(response)}",
                                    type="StoreUnauthorized", non_retryable=True)
        return error
    return ApplicationError(f"{store}: sign-in: unexpected answer {response.status_code}", type="StoreUnavailable")
