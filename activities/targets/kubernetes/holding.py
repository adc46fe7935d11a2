"""What the in-place workload rollouts share (a StatefulSet by its partition, a DaemonSet node by node): the
workload held by one rollout through annotations written with the first change (who holds it, what it
ran, how it updated before), and the wait until the pods that should move have moved, within the progress
deadline (which survives retries), deleting pods where the engine drives the update (OnDelete)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

from kubernetes import client
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.targets.kubernetes.client import STRATEGIC_MERGE, KubeClients, api_errors
from activities.targets.kubernetes.pods import digest_of, pod_problem
from activities.waiting import hand_over_on_shutdown, started_from
from models.delivery import PrepareCanaryResult
from models.kubernetes import WorkloadInput

ROLLOUT = "rollouts.durable.dev/rollout"
STABLE_IMAGE = "rollouts.durable.dev/stable-image"
BEFORE = "rollouts.durable.dev/update-before"  # how it updated before: a partition, an update strategy
REVISION = "controller-revision-hash"


def holder(workload) -> str:
    return (workload.metadata.annotations or {}).get(ROLLOUT, "")


def refuse_held(workload, kind: str, rollout_id: str) -> None:
    """Another rollout holds the workload: refused, naming it (a crashed one's annotation is removed by hand)."""
    owner = holder(workload)
    if owner and owner != rollout_id:
        raise ApplicationError(f"{kind} {workload.metadata.namespace}/{workload.metadata.name} is being rolled out by "
                               f"{owner}: let it end (or remove its annotation {ROLLOUT} if that rollout is gone)",
                               type="Conflict", non_retryable=True)


def hold(workload, rollout_id: str, stable_image: str, before: str) -> dict:
    """The metadata of the first, conditional write (resourceVersion: a write in between is a 409, retried)."""
    return {"resourceVersion": workload.metadata.resource_version,
            "annotations": {ROLLOUT: rollout_id, STABLE_IMAGE: stable_image, BEFORE: before}}


RELEASE = {"metadata": {"annotations": {ROLLOUT: None, STABLE_IMAGE: None, BEFORE: None}}}


def pod_lag(pod: client.V1Pod | None, name: str, revision: str, container: client.V1Container) -> str:
    """Why the pod `name` does not run `revision`, Running and Ready with the image ("" when it does)."""
    if pod is None or pod.metadata.deletion_timestamp is not None:
        return f"{name} is not there yet"
    if (pod.metadata.labels or {}).get(REVISION) != revision:
        return f"{name} is on revision {(pod.metadata.labels or {}).get(REVISION)}, not {revision}"
    problem = pod_problem(pod, container.name, container.image, digest_of(container.image))
    return f"{name} {problem}" if problem else ""


def delete_pod(core: client.CoreV1Api, pod: client.V1Pod) -> None:
    """Delete this very pod (its uid as precondition); gone already or replaced meanwhile is fine."""
    try:
        core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace, body=client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid=pod.metadata.uid)))
    except client.ApiException as error:
        if error.status not in (404, 409):
            with api_errors(f"pod {pod.metadata.namespace}/{pod.metadata.name}"):
                raise


def wait_moved(what: str, deadline_seconds: int, step: Callable[[], list[str]], interval: float = 0.25) -> None:
    """`step()` (read, delete what may go next, say what still lags) until nothing lags; past the progress
    deadline — counted from the first attempt — a non-retryable ProgressDeadlineExceeded naming the lag."""
    details = activity.info().heartbeat_details if activity.in_activity() else ()
    started = started_from(details, what)
    while True:
        lagging = step()
        if not lagging:
            return
        waited = time.time() - started
        if waited > deadline_seconds:
            raise ApplicationError(f"{what}: not moved after {int(waited)}s (progress deadline {deadline_seconds}s): "
                                   f"{'; '.join(lagging[:3])}", type="ProgressDeadlineExceeded", non_retryable=True)
        if activity.in_activity():
            hand_over_on_shutdown(what)
            activity.heartbeat({"wait": what, "started": started})
        time.sleep(interval)


class HeldWorkloadActivities:
    """The part of a StatefulSet's and a DaemonSet's activities that only names differ in: `KIND` as the
    messages say it ("statefulset"), `API` as the client's methods do ("stateful_set")."""

    KIND: ClassVar[str]
    API: ClassVar[str]

    def __init__(self, clients: KubeClients):
        self._clients = clients

    def _apis(self, r: WorkloadInput) -> tuple[client.AppsV1Api, client.CoreV1Api, str, str]:
        t = r.target
        return self._clients.apps(t.context), self._clients.core(t.context), t.workload, t.namespace

    def _load(self, r: WorkloadInput) -> tuple[client.AppsV1Api, client.CoreV1Api, Any]:
        """The clients of the target's cluster and the workload as it is now."""
        apps, core, name, namespace = self._apis(r)
        return apps, core, self._read(apps, name, namespace)

    def _read(self, apps: client.AppsV1Api, name: str, namespace: str) -> Any:
        with api_errors(f"{self.KIND} {namespace}/{name}"):
            return getattr(apps, f"read_namespaced_{self.API}")(name, namespace)

    def _patch(self, apps: client.AppsV1Api, workload: Any, body: dict) -> Any:
        name, namespace = workload.metadata.name, workload.metadata.namespace
        with api_errors(f"{self.KIND} {namespace}/{name}"):
            return getattr(apps, f"patch_namespaced_{self.API}")(name, namespace, body, _content_type=STRATEGIC_MERGE)

    def _refuse(self, workload: Any, why: str) -> ApplicationError:
        return ApplicationError(f"{self.KIND} {workload.metadata.namespace}/{workload.metadata.name} {why}",
                                type="Conflict", non_retryable=True)

    def _prepared_before(self, workload: Any, r: WorkloadInput, total: int) -> PrepareCanaryResult | None:
        """Prepare retried after its write: what the first attempt found; held by another run: refused."""
        container = workload.spec.template.spec.containers[0]
        if holder(workload) == (r.hold or r.rollout_id):
            return PrepareCanaryResult(total_replicas=total, stable_image=workload.metadata.annotations[STABLE_IMAGE],
                                       container=container.name)
        refuse_held(workload, self.KIND, r.hold or r.rollout_id)
        return None

    def _owned(self, workload: Any, r: WorkloadInput) -> Any:
        """Held by this run, its template still on the rollout's image: else the step is refused."""
        if holder(workload) != (r.hold or r.rollout_id):
            raise self._refuse(workload, f"is not held by {r.hold or r.rollout_id} (held by "
                                         f"{holder(workload) or 'no rollout'})")
        image = workload.spec.template.spec.containers[0].image
        if image != r.image:
            raise self._refuse(workload, f"was changed meanwhile: its template runs {image}, not {r.image}")
        return workload

    def _stable_again(self, apps: client.AppsV1Api, workload: Any, r: WorkloadInput) -> Any:
        """Abort's first write: the stable image back on the template (the previous ControllerRevision again)."""
        container = workload.spec.template.spec.containers[0]
        if container.image == r.stable_image:
            return workload
        return self._patch(apps, workload, {"spec": {"template": {"spec": {
            "containers": [{"name": container.name, "image": r.stable_image}]}}}})
