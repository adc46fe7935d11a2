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

from kubernetes import client
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.targets.kubernetes import holding as held
from activities.targets.kubernetes.client import api_errors, list_all
from activities.targets.kubernetes.holding import HeldWorkloadActivities
from activities.targets.kubernetes.pods import is_ready
from models.delivery import PrepareCanaryResult, WeightResult
from models.kubernetes import WorkloadInput
from models.targets import TargetObservation
from models.workloads import updated_ordinals


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


PARKED = 2**31 - 1  # prepare's partition: above any ordinal, so no pod moves — not even one scaled up meanwhile


def _on_delete(sts: client.V1StatefulSet) -> bool:
    return sts.spec.update_strategy is not None and sts.spec.update_strategy.type == "OnDelete"


def _partition(sts: client.V1StatefulSet) -> int:
    rolling = None if _on_delete(sts) else sts.spec.update_strategy.rolling_update if sts.spec.update_strategy else None
    return (rolling.partition or 0) if rolling is not None else 0


def _revision(pod: client.V1Pod | None) -> str:
    return (pod.metadata.labels or {}).get(held.REVISION, "") if pod is not None else ""


def _lag(sts: client.V1StatefulSet, ordinal: int, pod: client.V1Pod | None, partition: int) -> str:
    """Why ordinal `ordinal` is not where `partition` puts it ("" when it is): at or above it, the update
    revision, Running and Ready with the template's image; below it (RollingUpdate), the current revision
    (the one the controller recreates there), Ready."""
    name = f"{sts.metadata.name}-{ordinal}"
    if ordinal >= partition:
        return held.pod_lag(pod, name, sts.status.update_revision or "", sts.spec.template.spec.containers[0])
    if pod is None or pod.metadata.deletion_timestamp is not None:
        return f"{name} is not there yet"
    if _revision(pod) != sts.status.current_revision and not _on_delete(sts):  # OnDelete: v1.20 never moves it
        return f"{name} is on revision {_revision(pod)}, not {sts.status.current_revision}"
    return "" if is_ready(pod) else f"{name} is not ready"


def _lagging(sts: client.V1StatefulSet, pods: dict[int, client.V1Pod], partition: int) -> list[str]:
    """Why the ordinals are not all where `partition` puts them ([] when they are)."""
    out = [] if (sts.status.observed_generation or 0) >= (sts.metadata.generation or 0) else \
        ["the controller has not seen the change yet"]
    return out + [lag for o in range(sts.spec.replicas or 0) if (lag := _lag(sts, o, pods.get(o), partition))]


class StatefulSetActivities(HeldWorkloadActivities):
    KIND, API = "statefulset", "stateful_set"

    @activity.defn(name="prepare_stateful_canary")
    def prepare_stateful_canary(self, r: WorkloadInput) -> PrepareCanaryResult:
        apps, core, sts = self._load(r)
        container, replicas = sts.spec.template.spec.containers[0], sts.spec.replicas or 0
        if (before := self._prepared_before(sts, r, replicas)) is not None:
            return before
        if (sts.status.observed_generation or 0) < (sts.metadata.generation or 0):
            raise ApplicationError(f"statefulset {sts.metadata.namespace}/{sts.metadata.name}: its controller has not "
                                   "seen its last change yet", type="NotYet")
        settled = not [lag for lag in _lagging(sts, _pods(core, sts), 0) if " is on revision " in lag] if \
            _on_delete(sts) else sts.status.current_revision == sts.status.update_revision
        if not settled:  # OnDelete: v1.20 never moves currentRevision (kubernetes#73492): the pods say
            raise self._refuse(sts, f"is mid-update (updateRevision {sts.status.update_revision} not on every pod): "
                               "let it finish first")
        patch: dict = {"metadata": held.hold(sts, r.hold or r.rollout_id, container.image, str(_partition(sts))),
                       "spec": {"template": {"spec": {"containers": [{"name": container.name, "image": r.image}]}}}}
        if not _on_delete(sts):  # nothing moves before the first step
            patch["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"partition": PARKED}}
        self._patch(apps, sts, patch)  # resourceVersion: a write in between is a 409, retried
        return PrepareCanaryResult(total_replicas=replicas, stable_image=container.image, container=container.name)

    @activity.defn(name="set_stateful_partition")
    def set_stateful_partition(self, r: WorkloadInput) -> WeightResult:
        """The highest ordinals for `r.weight` (of the live replica count) on the new revision, Running and
        Ready, the others on the current one, within the deadline."""
        apps, core, name, namespace = self._apis(r)
        sts = self._owned(self._read(apps, name, namespace), r)
        replicas = sts.spec.replicas or 0
        updated = updated_ordinals(r.weight, replicas)
        if _on_delete(sts):  # a deleted pod comes back on the update revision: an OnDelete canary cannot shrink
            ahead = [o for o, pod in _pods(core, sts).items() if o < replicas - updated
                     and _revision(pod) == sts.status.update_revision]
            if ahead:
                raise self._refuse(sts, f"(OnDelete) already runs ordinals {sorted(ahead)} on the new revision: its canary "
                                   f"cannot shrink to {updated} (abort goes back)")
        changed = self._move(apps, core, sts, replicas - updated, r.progress_deadline_seconds)
        return WeightResult(weight=r.weight, canary_replicas=updated, stable_replicas=replicas - updated,
                            actual_weight=100.0 * updated / replicas if replicas else 0.0, changed=changed)

    @activity.defn(name="promote_stateful_canary")
    def promote_stateful_canary(self, r: WorkloadInput) -> None:
        apps, core, sts = self._load(r)
        if held.holder(sts) != (r.hold or r.rollout_id):  # released already (a retry) — if it really is all on r.image
            self._settled_on(apps, core, sts, r.image, r.progress_deadline_seconds)
            return
        self._move(apps, core, self._owned(sts, r), 0, r.progress_deadline_seconds)
        self._patch(apps, sts, held.RELEASE)

    @activity.defn(name="abort_stateful_canary")
    def abort_stateful_canary(self, r: WorkloadInput) -> None:
        """The stable image back on the template, every ordinal back on it, the partition where it was."""
        apps, core, sts = self._load(r)
        if held.holder(sts) != (r.hold or r.rollout_id):  # released already (a retry) — if it really is all back
            self._settled_on(apps, core, sts, r.stable_image, r.progress_deadline_seconds)
            return
        sts = self._stable_again(apps, sts, r)
        before = (sts.metadata.annotations or {}).get(held.BEFORE, "0")
        partition = min(int(before), sts.spec.replicas or 0) if before.isdigit() else 0
        # ordinals at or above it go back with the controller; those below on the new revision are deleted
        # and come back on the current one
        self._move(apps, core, sts, partition, r.progress_deadline_seconds)
        self._patch(apps, sts, held.RELEASE)

    CANARY = (prepare_stateful_canary, set_stateful_partition, promote_stateful_canary, abort_stateful_canary)

    def _settled_on(self, apps: client.AppsV1Api, core: client.CoreV1Api, sts: client.V1StatefulSet, image: str,
                    deadline_seconds: int) -> None:
        """Nothing of ours to do: true only if every ordinal runs `image` on the update revision — waited for
        within the deadline (a retry after the release write may find a pod between two states)."""

        def step() -> list[str]:
            current = self._read(apps, sts.metadata.name, sts.metadata.namespace)
            on = current.spec.template.spec.containers[0].image
            if on != image:
                raise self._refuse(current, f"is not held by this rollout and its template runs {on}, not {image}")
            return _lagging(current, _pods(core, current), 0)

        held.wait_moved(f"statefulset {sts.metadata.namespace}/{sts.metadata.name} settled", deadline_seconds, step)

    def _move(self, apps: client.AppsV1Api, core: client.CoreV1Api, sts: client.V1StatefulSet, partition: int,
              deadline_seconds: int) -> bool:
        """Every ordinal where `partition` puts it: the partition written (RollingUpdate; the controller moves
        those at or above it, highest first), pods deleted one at a time, highest first, where the
        controller moves nothing (OnDelete; below the partition, an ordinal left on the new revision when
        the canary shrinks or aborts); waited for within the progress deadline, which survives retries."""
        name, namespace = sts.metadata.name, sts.metadata.namespace
        changed = False
        if not _on_delete(sts) and _partition(sts) != partition:
            self._patch(apps, sts, {"spec": {"updateStrategy": {
                "type": "RollingUpdate", "rollingUpdate": {"partition": partition}}}})
            changed = True

        def step() -> list[str]:
            nonlocal changed
            current = self._read(apps, name, namespace)
            pods = _pods(core, current)
            lagging = _lagging(current, pods, partition)
            if lagging:
                changed = self._delete_next(core, current, pods, partition) or changed
            return lagging

        held.wait_moved(f"statefulset {namespace}/{name} partition {partition}", deadline_seconds, step)
        return changed

    @staticmethod
    def _delete_next(core: client.CoreV1Api, sts: client.V1StatefulSet, pods: dict[int, client.V1Pod],
                     partition: int) -> bool:
        """The highest ordinal on a revision the controller will not replace by itself deleted — once every
        higher one is where it should be (one at a time, as the controller's RollingUpdate goes). That is: at
        or above the partition, OnDelete, or a pod that is not Ready (the controller's OrderedReady update
        waits for it forever: Kubernetes' "forced rollback"); below it, one left on the new revision."""
        for ordinal in range(sts.spec.replicas - 1, -1, -1):
            pod = pods.get(ordinal)
            if pod is None or pod.metadata.deletion_timestamp is not None:
                return False  # being replaced: wait for it
            stale = (ordinal >= partition and _revision(pod) != sts.status.update_revision and
                     (_on_delete(sts) or not is_ready(pod))) or \
                (not _on_delete(sts) and ordinal < partition and _revision(pod) != sts.status.current_revision)
            if stale:
                held.delete_pod(core, pod)
                return True
            if _lag(sts, ordinal, pod, partition):
                return False  # on its way (the controller's, or a replacement not ready yet): the next one waits
        return False


def observe_stateful_set(apps: client.AppsV1Api, core: client.CoreV1Api, t) -> TargetObservation:
    """What a StatefulSet runs: its template's image, settled when every ordinal runs the update revision,
    Running and Ready (RollingUpdate: and currentRevision caught up; OnDelete: v1.20 never moves it)."""
    with api_errors(f"statefulset {t.namespace}/{t.stateful_set}"):
        sts = apps.read_namespaced_stateful_set(t.stateful_set, t.namespace)
        pods = _pods(core, sts)
    lagging = _lagging(sts, pods, 0)
    status = sts.status
    if status.current_revision != status.update_revision and not _on_delete(sts):
        lagging.append(f"currentRevision {status.current_revision} is not updateRevision {status.update_revision}")
    replicas = sts.spec.replicas or 0
    running = sum(1 for o in range(replicas) if not _lag(sts, o, pods.get(o), 0))
    detail = "; ".join([f"{status.ready_replicas or 0}/{replicas} ready, revision {status.update_revision}", *lagging[:3]])
    return TargetObservation(target=f"statefulset {t.namespace}/{t.stateful_set}",
                             version=sts.spec.template.spec.containers[0].image, ready=not lagging, detail=detail,
                             instances=running, revision=status.update_revision or "")
