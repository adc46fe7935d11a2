"""Talking to a Kubernetes API server: one client per kubeconfig context, and one rule for its errors.

404 and 4xx validation errors are permanent (non-retryable, the message names the object); 409, 429,
5xx and connection errors are retried — first by the HTTP client (a few quick retries, honouring a 429's
Retry-After, as client-go does), then by Temporal (the activity's retry policy). Every call is safe to
repeat: the activities read first and change only what differs.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from temporalio.exceptions import ApplicationError
from urllib3.util.retry import Retry

# kubernetes 37's generated client sends every PATCH as json-patch unless told: name the content type.
STRATEGIC_MERGE = "application/strategic-merge-patch+json"


JSON_PATCH = "application/json-patch+json"


_PERMANENT = {400: "Invalid", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 422: "Invalid"}


# Transient API errors are retried inside the call before the activity sees them: 5 tries over ~3 s,
# any verb (our writes are idempotent; a repeated create answers AlreadyExists), Retry-After honoured.
TRANSIENT = Retry(total=5, connect=5, read=5, status=5, backoff_factor=0.2, backoff_max=2.0,
                  status_forcelist=(429, 500, 502, 503, 504), allowed_methods=None,
                  respect_retry_after_header=True, raise_on_status=False)


class KubeClients:
    """One API client per kubeconfig context, built on first use (kubeconfig from $KUBECONFIG)."""

    def __init__(self, kubeconfig: str | None = None):
        self._kubeconfig = kubeconfig
        self._clients: dict[str, client.ApiClient] = {}
        self._lock = threading.Lock()

    def api(self, context: str) -> client.ApiClient:
        with self._lock:
            if context not in self._clients:
                try:
                    configuration = client.Configuration()
                    config.load_kube_config(config_file=self._kubeconfig, context=context,
                                            client_configuration=configuration, persist_config=False)
                    configuration.retries = TRANSIENT
                    self._clients[context] = client.ApiClient(configuration)
                except (config.ConfigException, OSError) as error:
                    raise ApplicationError(
                        f"kubeconfig context {context!r}: {error}", type="InvalidTarget", non_retryable=True
                    ) from None
            return self._clients[context]

    def apps(self, context: str) -> client.AppsV1Api:
        return client.AppsV1Api(self.api(context))

    def core(self, context: str) -> client.CoreV1Api:
        return client.CoreV1Api(self.api(context))

    def close(self) -> None:
        for api in self._clients.values():
            api.close()


@contextlib.contextmanager
def api_errors(what: str) -> Iterator[None]:
    """Turn an ApiException into an ApplicationError that names `what` (e.g. "deployment shop/web")."""
    try:
        yield
    except ApiException as error:
        if error.status in _PERMANENT:
            reason = "not found" if error.status == 404 else _reason(error)
            raise ApplicationError(f"{what}: {reason}", type=_PERMANENT[error.status], non_retryable=True) from None
        raise ApplicationError(f"{what}: {error.status} {_reason(error)}", type="KubernetesUnavailable") from None


def list_all(list_call, *args, page: int = 500, **kwargs) -> list:
    """Every item of a list call, read in pages of `page` (`limit` and `continue`): a namespace with
    thousands of ReplicaSets answers in bounded pieces instead of one response of all of them."""
    items, token = [], None
    while True:
        result = list_call(*args, limit=page, _continue=token, **kwargs)
        items.extend(result.items or [])
        token = result.metadata._continue if result.metadata else None
        if not token:
            return items


def read_optional(read, *args):
    """`read(*args)`, or None when the object does not exist (other API errors propagate)."""
    try:
        return read(*args)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def create_if_absent(create, *args) -> bool:
    """`create(*args)`; False when it already exists (created by an earlier attempt)."""
    try:
        create(*args)
        return True
    except ApiException as error:
        if error.status == 409 and _status_reason(error) == "AlreadyExists":
            return False
        raise


def _status(error: ApiException) -> dict:
    """The Kubernetes Status the API server answered with ({} when the body is not one)."""
    try:
        status = json.loads(error.body or "{}")
    except (ValueError, TypeError):
        return {}
    return status if isinstance(status, dict) else {}


def _status_reason(error: ApiException) -> str:
    """The machine-readable reason of a Status answer (AlreadyExists, Conflict, ...)."""
    return str(_status(error).get("reason") or "")


def _reason(error: ApiException) -> str:
    return _status(error).get("message") or str(error.reason)


def invalid(message: str) -> ApplicationError:
    """A target the rollout cannot work on (a missing object, a Service that selects the wrong pods)."""
    return ApplicationError(message, type="InvalidTarget", non_retryable=True)
