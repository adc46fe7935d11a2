"""Waiting for a Deployment to settle (every wanted pod on the current template, available, no old pods
left) within the progress deadline, which survives retries; waiting until its ready pods are in the
endpoints of every Service that selects them (what a router sends to); why pods are not ready; the
ReplicaSets a Deployment keeps per revision."""

from __future__ import annotations

import time

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.targets.kubernetes.client import api_errors, read_optional
from activities.targets.kubernetes.pods import is_ready
from activities.waiting import hand_over_on_shutdown, started_from


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


def wait_settled(
    apps: client.AppsV1Api, namespace: str, name: str, deadline_seconds: int, core: client.CoreV1Api | None = None
) -> client.V1Deployment:
    """Poll until the Deployment is settled, heartbeating; the progress deadline survives retries.

    The deadline starts at the first attempt: each heartbeat carries the start time, and a retried
    attempt reads it back from `heartbeat_details`, so a crash does not reset the clock.
    """
    details = activity.info().heartbeat_details if activity.in_activity() else ()
    started = started_from(details, name)
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
            hand_over_on_shutdown(what)
            activity.heartbeat({"wait": name, "started": started})
        time.sleep(0.25)


def wait_in_endpoints(core: client.CoreV1Api, deployment: client.V1Deployment, deadline_seconds: int) -> None:
    """Poll until every ready pod of the Deployment is a ready address of every Service selecting it.

    A pod counts as ready the moment its condition says so; the endpoints controller lists it a
    moment later. A router that shifts weight in between sends requests to a Service with no backend
    for them (a mesh answers 503), so traffic moves only once the endpoints have caught up.
    """
    ns, name = deployment.metadata.namespace, deployment.metadata.name
    selector = ",".join(f"{k}={v}" for k, v in (deployment.spec.selector.match_labels or {}).items())
    started = started_from(activity.info().heartbeat_details if activity.in_activity() else (), name)
    while True:
        with api_errors(f"pods of deployment {ns}/{name}"):
            pods = [p for p in core.list_namespaced_pod(ns, label_selector=selector).items
                    if p.metadata.deletion_timestamp is None and is_ready(p)]
            missing = {
                service.metadata.name: absent
                for service in core.list_namespaced_service(ns).items
                if (absent := _not_listed(core, service, pods))
            }
        if not missing:
            return
        if time.time() - started > deadline_seconds:
            service, absent = sorted(missing.items())[0]
            raise ApplicationError(
                f"service {ns}/{service}: ready pods {', '.join(sorted(absent))} not in its endpoints after "
                f"{int(time.time() - started)}s (progress deadline {deadline_seconds}s)",
                type="ProgressDeadlineExceeded", non_retryable=True)
        if activity.in_activity():  # the same details as `wait_settled`'s, so a retry keeps a deadline
            hand_over_on_shutdown(f"pods of deployment {ns}/{name}")
            activity.heartbeat({"wait": name, "started": started})
        time.sleep(0.1)




def _not_listed(core: client.CoreV1Api, service: client.V1Service, pods: list[client.V1Pod]) -> set[str]:
    """The names of the pods the Service selects that its endpoints do not list as ready."""
    wanted = service.spec.selector or {}
    if not service.spec.ports and service.spec.cluster_ip != "None":
        return set()  # the endpoints controller lists no address for a Service without ports
    selected = {p.metadata.name for p in pods if wanted and all((p.metadata.labels or {}).get(k) == v
                                                                for k, v in wanted.items())}
    if not selected:
        return set()
    endpoints = read_optional(core.read_namespaced_endpoints, service.metadata.name, service.metadata.namespace)
    subsets = endpoints.subsets or [] if endpoints is not None else []
    listed = {a.target_ref.name for s in subsets for a in s.addresses or [] if a.target_ref}
    return selected - listed


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
