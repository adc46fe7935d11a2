"""A StatefulSet's canary by its partition (models/workloads.py): prepare puts the new image on the template
with the partition at the replica count (no pod changes yet), each step lowers the partition so the
highest ordinals take the new revision and waits until every one of them runs it, Running and Ready;
promotion takes the partition to 0; abort puts the stable image back (the template equals the previous
ControllerRevision again, so the controller reuses it) and the partition where it was, and waits until
every updated ordinal is back on it. `OnDelete` StatefulSets are moved by deleting the pods of those
ordinals, highest first, one at a time. No claim or volume is ever deleted.

The StatefulSet carries who is rolling it and what it ran before (annotations written with the change, in
one conditional write), so a retried prepare finds its own work, and a second rollout of the same
StatefulSet is refused naming the first. Every activity reads first and changes only what differs."""

from __future__ import annotations

import time

from kubernetes import client
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.targets.kubernetes.client import STRATEGIC_MERGE, KubeClients, api_errors, list_all
from activities.targets.kubernetes.pods import digest_of, pod_problem
from activities.waiting import hand_over_on_shutdown, started_from
from models.delivery import PrepareCanaryResult, WeightResult
from models.kubernetes import StatefulSetInput
from models.targets import TargetObservation

ROLLOUT = "rollouts.durable.dev/rollout"
STABLE_IMAGE = "rollouts.durable.dev/stable-image"
PARTITION_BEFORE = "rollouts.durable.dev/partition-before"
REVISION = "controller-revision-hash"


def _ordinal(pod: client.V1Pod, name: str) -> int:
    suffix = pod.metadata.name[len(name) + 1:]
    return int(suffix) if pod.metadata.name.startswith(name + "-") and suffix.isdigit() else -1


def _pods(core: client.CoreV1Api, sts: client.V1StatefulSet) -> dict[int, client.V1Pod]:
    """The StatefulSet's own pods by ordinal (owned by it, not ended)."""
    meta = sts.metadata
    labels = ",".join(f"{k}={v}" for k, v in (sts.spec.selector.match_labels or {}).items())
    found = {}
    for pod in list_all(core.list_namespaced_pod, meta.namespace, label_selector=labels):
        if any(o.uid == meta.uid for o in pod.metadata.owner_references or []) and \
                pod.status.phase not in ("Succeeded", "Failed"):
            found[_ordinal(pod, meta.name)] = pod
    return found


def _lag(sts: client.V1StatefulSet, ordinal: int, pod: client.V1Pod | None) -> str:
    """Why ordinal `ordinal` does not run the update revision, Running and Ready ("" when it does)."""
    name, revision = f"{sts.metadata.name}-{ordinal}", sts.status.update_revision or ""
    if pod is None or pod.metadata.deletion_timestamp is not None:
        return f"{name} is not there yet"
    if (pod.metadata.labels or {}).get(REVISION) != revision:
        return f"{name} is on revision {(pod.metadata.labels or {}).get(REVISION)}, not {revision}"
    container = sts.spec.template.spec.containers[0]
    problem = pod_problem(pod, container.name, container.image, digest_of(container.image))
    return f"{name} {problem}" if problem else ""


def _lagging(sts: client.V1StatefulSet, pods: dict[int, client.V1Pod], lowest: int) -> list[str]:
    """Why ordinals `lowest`… do not all run the update revision, Running and Ready ([] when they do)."""
    out = [] if (sts.status.observed_generation or 0) >= (sts.metadata.generation or 0) else \
        ["the controller has not seen the change yet"]
    return out + [lag for o in range(lowest, sts.spec.replicas or 0) if (lag := _lag(sts, o, pods.get(o)))]


class StatefulSetActivities:
    def __init__(self, clients: KubeClients):
        self._clients = clients

    def _apis(self, r: StatefulSetInput) -> tuple[client.AppsV1Api, client.CoreV1Api, str, str]:
        t = r.target
        return self._clients.apps(t.context), self._clients.core(t.context), t.stateful_set, t.namespace

    def _read(self, apps: client.AppsV1Api, name: str, namespace: str) -> client.V1StatefulSet:
        with api_errors(f"statefulset {namespace}/{name}"):
            return apps.read_namespaced_stateful_set(name, namespace)

    @activity.defn(name="prepare_stateful_canary")
    def prepare_stateful_canary(self, r: StatefulSetInput) -> PrepareCanaryResult:
        apps, _, name, namespace = self._apis(r)
        sts = self._read(apps, name, namespace)
        notes, container = sts.metadata.annotations or {}, sts.spec.template.spec.containers[0]
        replicas = sts.spec.replicas if sts.spec.replicas is not None else 1
        owner = notes.get(ROLLOUT)
        if owner == r.rollout_id:  # a retry after the change was written
            return PrepareCanaryResult(total_replicas=replicas, stable_image=notes[STABLE_IMAGE], container=container.name)
        if owner:
            raise ApplicationError(f"statefulset {namespace}/{name} is being rolled out by {owner}: let it end (or "
                                   f"remove its annotation {ROLLOUT} if that rollout is gone)", type="Conflict",
                                   non_retryable=True)
        if sts.status.current_revision != sts.status.update_revision:
            raise ApplicationError(f"statefulset {namespace}/{name} is mid-update (currentRevision "
                                   f"{sts.status.current_revision}, updateRevision {sts.status.update_revision}): "
                                   "let it finish first", type="Conflict", non_retryable=True)
        on_delete = sts.spec.update_strategy is not None and sts.spec.update_strategy.type == "OnDelete"
        rolling = None if on_delete else sts.spec.update_strategy.rolling_update if sts.spec.update_strategy else None
        before = (rolling.partition or 0) if rolling is not None else 0
        patch: dict = {"metadata": {"resourceVersion": sts.metadata.resource_version, "annotations": {
            ROLLOUT: r.rollout_id, STABLE_IMAGE: container.image, PARTITION_BEFORE: str(before)}},
            "spec": {"template": {"spec": {"containers": [{"name": container.name, "image": r.image}]}}}}
        if not on_delete:  # nothing moves before the first step
            patch["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"partition": replicas}}
        with api_errors(f"statefulset {namespace}/{name}"):  # resourceVersion: a write in between is a 409, retried
            apps.patch_namespaced_stateful_set(name, namespace, patch, _content_type=STRATEGIC_MERGE)
        return PrepareCanaryResult(total_replicas=replicas, stable_image=container.image, container=container.name)

    @activity.defn(name="set_stateful_partition")
    def set_stateful_partition(self, r: StatefulSetInput) -> WeightResult:
        """The `r.updated` highest ordinals on the new revision, Running and Ready, within the deadline."""
        apps, core, name, namespace = self._apis(r)
        sts = self._read(apps, name, namespace)
        replicas = sts.spec.replicas or 0
        self._owned(sts, r)
        changed = self._move(apps, core, sts, replicas - r.updated, r.progress_deadline_seconds)
        return WeightResult(weight=r.weight, canary_replicas=r.updated, stable_replicas=replicas - r.updated,
                            actual_weight=100.0 * r.updated / replicas if replicas else 0.0, changed=changed)

    @activity.defn(name="promote_stateful_canary")
    def promote_stateful_canary(self, r: StatefulSetInput) -> None:
        apps, core, name, namespace = self._apis(r)
        sts = self._read(apps, name, namespace)
        if (sts.metadata.annotations or {}).get(ROLLOUT) == r.rollout_id:
            self._move(apps, core, sts, 0, r.progress_deadline_seconds)
            self._release(apps, name, namespace)

    @activity.defn(name="abort_stateful_canary")
    def abort_stateful_canary(self, r: StatefulSetInput) -> None:
        """The stable image back on the template, the partition where it was, every updated ordinal back."""
        apps, core, name, namespace = self._apis(r)
        sts = self._read(apps, name, namespace)
        notes = sts.metadata.annotations or {}
        if notes.get(ROLLOUT) != r.rollout_id:
            return  # released already (a retry), or never prepared by this rollout: nothing of ours to undo
        container = sts.spec.template.spec.containers[0]
        if container.image != r.stable_image:
            with api_errors(f"statefulset {namespace}/{name}"):
                sts = apps.patch_namespaced_stateful_set(name, namespace, {"spec": {"template": {"spec": {"containers": [
                    {"name": container.name, "image": r.stable_image}]}}}}, _content_type=STRATEGIC_MERGE)
        self._move(apps, core, sts, int(notes.get(PARTITION_BEFORE, "0")), r.progress_deadline_seconds)
        self._release(apps, name, namespace)

    def _owned(self, sts: client.V1StatefulSet, r: StatefulSetInput) -> None:
        owner = (sts.metadata.annotations or {}).get(ROLLOUT)
        if owner != r.rollout_id:
            raise ApplicationError(f"statefulset {sts.metadata.namespace}/{sts.metadata.name} is not being rolled "
                                   f"out by {r.rollout_id} (its annotation {ROLLOUT} says {owner!r})",
                                   type="Conflict", non_retryable=True)

    def _release(self, apps: client.AppsV1Api, name: str, namespace: str) -> None:
        with api_errors(f"statefulset {namespace}/{name}"):
            apps.patch_namespaced_stateful_set(name, namespace, {"metadata": {"annotations": {
                ROLLOUT: None, STABLE_IMAGE: None, PARTITION_BEFORE: None}}}, _content_type=STRATEGIC_MERGE)

    def _move(self, apps: client.AppsV1Api, core: client.CoreV1Api, sts: client.V1StatefulSet, partition: int,
              deadline_seconds: int) -> bool:
        """Ordinals `partition`… onto the update revision (the partition lowered, or — OnDelete — their pods
        deleted highest first, one at a time), then waited for; the progress deadline survives retries."""
        name, namespace = sts.metadata.name, sts.metadata.namespace
        on_delete = sts.spec.update_strategy is not None and sts.spec.update_strategy.type == "OnDelete"
        changed = False
        current = sts.spec.update_strategy.rolling_update.partition if not on_delete and \
            sts.spec.update_strategy.rolling_update else 0
        if not on_delete and current != partition:
            with api_errors(f"statefulset {namespace}/{name}"):
                apps.patch_namespaced_stateful_set(name, namespace, {"spec": {"updateStrategy": {
                    "type": "RollingUpdate", "rollingUpdate": {"partition": partition}}}}, _content_type=STRATEGIC_MERGE)
            changed = True
        details = activity.info().heartbeat_details if activity.in_activity() else ()
        started = started_from(details, name)
        while True:
            sts = self._read(apps, name, namespace)
            pods = _pods(core, sts)
            lagging = _lagging(sts, pods, partition)
            if not lagging:
                return changed
            if on_delete:
                changed = self._delete_next(core, sts, pods, partition) or changed
            waited = time.time() - started
            if waited > deadline_seconds:
                raise ApplicationError(f"statefulset {namespace}/{name}: ordinals {partition}… not on revision "
                                       f"{sts.status.update_revision} after {int(waited)}s (progress deadline "
                                       f"{deadline_seconds}s): {'; '.join(lagging[:3])}",
                                       type="ProgressDeadlineExceeded", non_retryable=True)
            if activity.in_activity():
                hand_over_on_shutdown(f"statefulset {namespace}/{name}")
                activity.heartbeat({"wait": name, "started": started})
            time.sleep(0.25)

    @staticmethod
    def _delete_next(core: client.CoreV1Api, sts: client.V1StatefulSet, pods: dict[int, client.V1Pod],
                     partition: int) -> bool:
        """OnDelete: the highest ordinal not on the update revision deleted — once every higher one runs it,
        Running and Ready (one at a time, as the controller's RollingUpdate goes)."""
        revision = sts.status.update_revision
        for ordinal in range(sts.spec.replicas - 1, partition - 1, -1):
            pod = pods.get(ordinal)
            if pod is None or pod.metadata.deletion_timestamp is not None:
                return False  # being replaced: wait for it
            if (pod.metadata.labels or {}).get(REVISION) != revision:
                with api_errors(f"pod {sts.metadata.namespace}/{pod.metadata.name}"):
                    core.delete_namespaced_pod(pod.metadata.name, sts.metadata.namespace, body=client.V1DeleteOptions(
                        preconditions=client.V1Preconditions(uid=pod.metadata.uid)))
                return True
            if _lag(sts, ordinal, pod):
                return False  # on the new revision, not ready yet: the next one waits for it
        return False


def observe_stateful_set(apps: client.AppsV1Api, core: client.CoreV1Api, t) -> TargetObservation:
    """What a StatefulSet runs: its template's image, settled when every ordinal runs the update revision
    (currentRevision caught up with it), Running and Ready."""
    with api_errors(f"statefulset {t.namespace}/{t.stateful_set}"):
        sts = apps.read_namespaced_stateful_set(t.stateful_set, t.namespace)
        pods = _pods(core, sts)
    lagging = _lagging(sts, pods, 0)
    status = sts.status
    if status.current_revision != status.update_revision:
        lagging.append(f"currentRevision {status.current_revision} is not updateRevision {status.update_revision}")
    replicas = sts.spec.replicas or 0
    running = sum(1 for o in range(replicas) if not _lag(sts, o, pods.get(o)))
    detail = "; ".join([f"{status.ready_replicas or 0}/{replicas} ready, revision {status.update_revision}", *lagging[:3]])
    return TargetObservation(target=f"statefulset {t.namespace}/{t.stateful_set}",
                             version=sts.spec.template.spec.containers[0].image, ready=not lagging, detail=detail,
                             instances=running, revision=status.update_revision or "")
