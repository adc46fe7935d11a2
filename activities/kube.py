"""Kubernetes plumbing for activities: clients per kubeconfig context, error mapping, readiness waits.

Errors follow one rule: 404 and 4xx validation errors are permanent (non-retryable, the message names
the object); 409, 429, 5xx and connection errors are retried — first by the HTTP client (a few quick
retries, honouring a 429's Retry-After, as client-go does), then by Temporal (the activity's retry policy).
Every call is safe to repeat: the activities read first and change only what differs.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from temporalio import activity
from temporalio.exceptions import ApplicationError
from urllib3.util.retry import Retry

from models.names import ANNOTATION_ROLLOUT_ID, ANNOTATION_STABLE_REPLICAS, ANNOTATION_STRATEGY

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


def is_settled(deployment: client.V1Deployment) -> bool:
    """All wanted pods exist on the current template, are available, and no old pods remain."""
    want = deployment.spec.replicas or 0
    status = deployment.status
    return (
        (status.observed_generation or 0) >= (deployment.metadata.generation or 0)
        and (status.replicas or 0) == want
        and (status.updated_replicas or 0) == want
        and (status.available_replicas or 0) == want
        and (status.ready_replicas or 0) == want
    )


def ensure_not_busy(deployment: client.V1Deployment, rollout_id: str) -> None:
    """Refuse a Deployment that another rollout (another ID) is still changing, naming that rollout.

    A canary or blue-green holds its stable Deployment (the stable-size annotation) until it is promoted
    or aborted;
    a rolling update holds it until it is settled. A crashed earlier run of the *same* ID may resume.
    """
    marks = deployment.metadata.annotations or {}
    owner = marks.get(ANNOTATION_ROLLOUT_ID)
    if not owner or owner == rollout_id:
        return
    what = f"deployment {deployment.metadata.namespace}/{deployment.metadata.name}"
    if ANNOTATION_STABLE_REPLICAS in marks:
        busy = (f"{owner} holds it for a {marks.get(ANNOTATION_STRATEGY, 'canary')} (if that rollout is gone for good, remove the annotation "
                f"{ANNOTATION_STABLE_REPLICAS})")
    elif not is_settled(deployment):
        busy = f"{owner} is still rolling it out"
    else:
        return
    raise ApplicationError(f"{what}: {busy}; wait for it or abort it first", type="InvalidTarget", non_retryable=True)


def wait_settled(
    apps: client.AppsV1Api, namespace: str, name: str, deadline_seconds: int, core: client.CoreV1Api | None = None
) -> client.V1Deployment:
    """Poll until the Deployment is settled, heartbeating; the progress deadline survives retries.

    The deadline starts at the first attempt: each heartbeat carries the start time, and a retried
    attempt reads it back from `heartbeat_details`, so a crash does not reset the clock.
    """
    details = activity.info().heartbeat_details if activity.in_activity() else ()
    started = _started_from(details, name)
    what = f"deployment {namespace}/{name}"
    while True:
        with api_errors(what):
            deployment = apps.read_namespaced_deployment(name, namespace)
        if is_settled(deployment):
            return deployment
        waited = time.time() - started
        if waited > deadline_seconds:
            status = deployment.status
            core = core or client.CoreV1Api(apps.api_client)
            raise ApplicationError(
                f"{what}: {status.ready_replicas or 0}/{deployment.spec.replicas} ready after "
                f"{int(waited)}s (progress deadline {deadline_seconds}s){pod_problems(core, deployment)}",
                type="ProgressDeadlineExceeded",
                non_retryable=True,
            )
        if activity.in_activity():
            activity.heartbeat({"wait": name, "started": started})
        time.sleep(0.25)


def pod_problems(core: client.CoreV1Api, deployment: client.V1Deployment) -> str:
    """Why the Deployment's pods are not ready, counted by reason: "; pods: 2 CrashLoopBackOff"."""
    selector = ",".join(f"{k}={v}" for k, v in (deployment.spec.selector.match_labels or {}).items())
    try:
        pods = core.list_namespaced_pod(deployment.metadata.namespace, label_selector=selector).items
    except ApiException:
        return ""
    reasons: dict[str, int] = {}
    for pod in pods:
        if pod.metadata.deletion_timestamp is not None:
            continue
        for container in pod.status.container_statuses or []:
            waiting = container.state.waiting if container.state else None
            if not container.ready:
                reason = waiting.reason if waiting and waiting.reason else "NotReady"
                reasons[reason] = reasons.get(reason, 0) + 1
    return "; pods: " + ", ".join(f"{n} {r}" for r, n in sorted(reasons.items())) if reasons else ""


def _started_from(details: tuple, name: str) -> float:
    for item in details:
        if isinstance(item, dict) and item.get("wait") == name:
            return float(item["started"])
    return time.time()


def revisions(apps: client.AppsV1Api, deployment: client.V1Deployment) -> dict[int, client.V1ReplicaSet]:
    """The ReplicaSets the Deployment owns (kept by the controller for undo), by revision."""
    selector = ",".join(f"{k}={v}" for k, v in (deployment.spec.selector.match_labels or {}).items())
    replica_sets = apps.list_namespaced_replica_set(deployment.metadata.namespace, label_selector=selector).items
    return {
        int((rs.metadata.annotations or {}).get("deployment.kubernetes.io/revision", "0")): rs
        for rs in replica_sets
        if any(o.uid == deployment.metadata.uid for o in rs.metadata.owner_references or [])
    }


def replica_set_of_revision(apps: client.AppsV1Api, deployment: client.V1Deployment, revision: int):
    """The ReplicaSet the Deployment made for `revision`, or None."""
    return revisions(apps, deployment).get(revision)
