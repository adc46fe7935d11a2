"""A DaemonSet's canary node by node (models/workloads.py): prepare puts the new image on the template and
the update strategy to `OnDelete` (so the controller replaces no pod by itself), writing on the DaemonSet
who holds it, the image it ran and the strategy it had (activities/targets/kubernetes/holding.py); each
step replaces the pods of the next nodes in order (`node_order`: those already on the new revision, the
`nodes.first` nodes, the rest), at most `nodes.maxUnavailable` unavailable at once, never on a node the
controller would not put a pod on again, until each runs the new revision, Running and Ready; promotion does the rest and puts the strategy back; abort puts the stable image back
(the previous ControllerRevision is reused) and replaces the updated nodes' pods again, then the strategy.

A DaemonSet's status has no update revision: the current one is its ControllerRevision with the highest
`revision` (the controller raises a reused one's), read once the controller has seen the template."""

from __future__ import annotations

import json

from kubernetes import client
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.targets.kubernetes import holding as held
from activities.targets.kubernetes.client import api_errors, list_all
from activities.targets.kubernetes.holding import HeldWorkloadActivities
from activities.targets.kubernetes.pods import is_ready
from models.delivery import PrepareCanaryResult, WeightResult
from models.kubernetes import WorkloadInput
from models.targets import KubernetesTarget, TargetObservation
from models.workloads import updated_ordinals


def current_revision(apps: client.AppsV1Api, ds: client.V1DaemonSet) -> str:
    """The controller-revision-hash of the DaemonSet's current template ("" until the controller made it)."""
    if (ds.status.observed_generation or 0) < (ds.metadata.generation or 0):
        return ""
    labels = ",".join(f"{k}={v}" for k, v in (ds.spec.selector.match_labels or {}).items()) or None
    owned = [r for r in list_all(apps.list_namespaced_controller_revision, ds.metadata.namespace, label_selector=labels)
             if any(o.uid == ds.metadata.uid for o in r.metadata.owner_references or [])]  # its revisions carry them
    newest = max(owned, key=lambda r: r.revision, default=None)
    return (newest.metadata.labels or {}).get("controller-revision-hash", "") if newest else ""


def pods_by_node(core: client.CoreV1Api, ds: client.V1DaemonSet) -> dict[str, client.V1Pod]:
    labels = ",".join(f"{k}={v}" for k, v in (ds.spec.selector.match_labels or {}).items())
    return {p.spec.node_name: p for p in list_all(core.list_namespaced_pod, ds.metadata.namespace, label_selector=labels)
            if p.spec.node_name and any(o.uid == ds.metadata.uid for o in p.metadata.owner_references or [])
            and p.status.phase not in ("Succeeded", "Failed")}


def _tolerated(taint: client.V1Taint, tolerations: list[client.V1Toleration]) -> bool:
    return any((t.operator == "Exists" and not t.key) or (t.key == taint.key and (
        t.operator == "Exists" or (t.value or "") == (taint.value or ""))) and (not t.effect or t.effect == taint.effect)
        for t in tolerations)


def _eligible(node: client.V1Node, template: client.V1PodSpec) -> bool:
    """Where the controller would put a pod again: a Ready node whose NoSchedule and NoExecute taints the
    template tolerates (a pod deleted elsewhere would not come back)."""
    ready = is_ready(node)
    taints = [t for t in node.spec.taints or [] if t.effect in ("NoSchedule", "NoExecute")]
    return ready and all(_tolerated(t, template.tolerations or []) for t in taints)


def node_order(core: client.CoreV1Api, ds: client.V1DaemonSet, pods: dict[str, client.V1Pod],
               target: KubernetesTarget, revision: str = "") -> tuple[list[str], set[str]]:
    """The DaemonSet's nodes — those its pods run on, and the eligible ones its node selector picks — in
    update order: those already on `revision` (a node added meanwhile gets it at once), then the
    `nodes.first` ones, then the rest, each group by name; and the eligible ones (a pod may be replaced
    there)."""
    selector = ds.spec.template.spec.node_selector or {}
    labels = ",".join(f"{k}={v}" for k, v in selector.items()) or None
    with api_errors("nodes"):
        listed = list_all(core.list_node, label_selector=labels)
    eligible = {n.metadata.name for n in listed if _eligible(n, ds.spec.template.spec)}
    nodes = {n.metadata.name: n.metadata.labels or {} for n in listed}
    names = set(pods) | eligible
    first = (target.nodes.first if target.nodes else {}) or {}

    def key(name: str) -> tuple[bool, bool, str]:
        ahead = bool(revision) and name in pods and (pods[name].metadata.labels or {}).get(held.REVISION) == revision
        chosen = bool(first) and all(nodes.get(name, {}).get(k) == v for k, v in first.items())
        return not ahead, not chosen, name

    return sorted(names, key=key), eligible


def _unavailable(pod: client.V1Pod | None) -> bool:
    """Counted against maxUnavailable: no pod, one being deleted, or one not Ready (of either revision)."""
    return pod is None or pod.metadata.deletion_timestamp is not None or not is_ready(pod)


class DaemonSetActivities(HeldWorkloadActivities):
    KIND, API = "daemonset", "daemon_set"

    @activity.defn(name="prepare_daemon_canary")
    def prepare_daemon_canary(self, r: WorkloadInput) -> PrepareCanaryResult:
        apps, core, ds = self._load(r)
        container, (order, _) = ds.spec.template.spec.containers[0], node_order(core, ds, pods_by_node(core, ds), r.target)
        if (before := self._prepared_before(ds, r, len(order))) is not None:
            return before
        status = ds.status
        if (status.observed_generation or 0) < (ds.metadata.generation or 0):
            raise ApplicationError(f"daemonset {ds.metadata.namespace}/{ds.metadata.name}: its controller has not seen "
                                   "its last change yet", type="NotYet")
        if (status.updated_number_scheduled or 0) != (status.desired_number_scheduled or 0):
            raise self._refuse(ds, f"is mid-update ({status.updated_number_scheduled} of "
                                   f"{status.desired_number_scheduled} nodes updated): let it finish first")
        before = apps.api_client.sanitize_for_serialization(ds.spec.update_strategy) or {"type": "RollingUpdate"}
        patch = {"metadata": held.hold(ds, r.hold or r.rollout_id, container.image, json.dumps(before)),
                 "spec": {"updateStrategy": {"type": "OnDelete", "rollingUpdate": None},
                          "template": {"spec": {"containers": [{"name": container.name, "image": r.image}]}}}}
        self._patch(apps, ds, patch)
        return PrepareCanaryResult(total_replicas=len(order), stable_image=container.image, container=container.name)

    @activity.defn(name="set_daemon_nodes")
    def set_daemon_nodes(self, r: WorkloadInput) -> WeightResult:
        """The first nodes in order for `r.weight` (of the live node count) on the new revision, Running and
        Ready, within the deadline. A node's pod deleted comes back on the template's revision: a canary
        that would shrink is refused (abort goes back)."""
        apps, core, ds = self._load(r)
        ds = self._owned(ds, r)
        pods, revision = pods_by_node(core, ds), current_revision(apps, ds)
        order, _ = node_order(core, ds, pods, r.target, revision)
        updated = updated_ordinals(r.weight, len(order))
        ahead = [node for node in order[updated:] if revision and node in pods
                 and (pods[node].metadata.labels or {}).get(held.REVISION) == revision]
        if ahead:
            raise self._refuse(ds, f"already runs the new revision on {', '.join(ahead)}: its canary cannot shrink "
                                   f"to {updated} nodes (abort goes back)")
        order = self._move(apps, core, ds, r, lambda order: order[:updated])
        total = len(order)
        return WeightResult(weight=r.weight, canary_replicas=min(updated, total), stable_replicas=max(total - updated, 0),
                            actual_weight=100.0 * min(updated, total) / total if total else 0.0, changed=True)

    @activity.defn(name="promote_daemon_canary")
    def promote_daemon_canary(self, r: WorkloadInput) -> None:
        apps, core, ds = self._load(r)
        if held.holder(ds) != (r.hold or r.rollout_id):  # released already (a retry) — if it really is all on r.image
            self._settled_on(apps, core, ds, r)
            return
        self._move(apps, core, self._owned(ds, r), r, lambda order: order)
        self._release(apps, ds)

    @activity.defn(name="abort_daemon_canary")
    def abort_daemon_canary(self, r: WorkloadInput) -> None:
        """The stable image back on the template, every updated node's pod replaced again, the strategy back."""
        apps, core, ds = self._load(r)
        if held.holder(ds) != (r.hold or r.rollout_id):  # released already (a retry) — if it really is all back
            self._settled_on(apps, core, ds, r.model_copy(update={"image": r.stable_image}))
            return
        ds = self._stable_again(apps, ds, r)
        self._move(apps, core, ds, r, lambda order: order)
        self._release(apps, ds)

    CANARY = (prepare_daemon_canary, set_daemon_nodes, promote_daemon_canary, abort_daemon_canary)

    def _owned(self, ds: client.V1DaemonSet, r: WorkloadInput) -> client.V1DaemonSet:
        """Held by this run, on the rollout's image — and still OnDelete: a strategy put back to RollingUpdate
        meanwhile (a GitOps sync) would let the controller replace every node's pod between two steps."""
        ds = super()._owned(ds, r)
        if ds.spec.update_strategy is None or ds.spec.update_strategy.type != "OnDelete":
            raise self._refuse(ds, f"was changed meanwhile: its update strategy is "
                                   f"{ds.spec.update_strategy.type if ds.spec.update_strategy else None}, not OnDelete")
        return ds

    def _settled_on(self, apps: client.AppsV1Api, core: client.CoreV1Api, ds: client.V1DaemonSet,
                    r: WorkloadInput) -> None:
        """Nothing of ours to do: true only if every node runs `r.image` on the current revision — waited for
        within the deadline (a retry after the release write may find a pod between two states)."""
        def step() -> list[str]:
            seen = observe_daemon_set(apps, core, r.target)
            if seen.version != r.image:
                raise self._refuse(ds, f"is not held by this rollout and runs {seen.version}, not {r.image}")
            return [] if seen.ready else [seen.detail]

        held.wait_moved(f"daemonset {ds.metadata.namespace}/{ds.metadata.name} settled", r.progress_deadline_seconds,
                        step, interval=1.0)

    def _release(self, apps: client.AppsV1Api, ds: client.V1DaemonSet) -> None:
        """The update strategy it had, and the annotations off, in one write."""
        raw = (ds.metadata.annotations or {}).get(held.BEFORE) or '{"type": "RollingUpdate"}'
        try:
            before = json.loads(raw)
        except ValueError:
            before = None
        if not isinstance(before, dict) or before.get("type") not in ("RollingUpdate", "OnDelete"):
            raise self._refuse(ds, f"has an annotation {held.BEFORE} that is no update strategy ({raw[:80]!r}): its "
                                   "strategy is left OnDelete, its holder annotations in place")
        self._patch(apps, ds, {**held.RELEASE, "spec": {"updateStrategy": before}})

    def _move(self, apps: client.AppsV1Api, core: client.CoreV1Api, ds: client.V1DaemonSet, r: WorkloadInput,
              wave) -> list[str]:
        """The pods of the nodes `wave(order)` picks onto the current revision, at most maxUnavailable of the
        DaemonSet's pods down at once (deleted, not there yet or not Ready); a pod on a node the controller
        would not put one on again (NotReady, a taint its pods do not tolerate) is never deleted — the step
        waits and, at its deadline, names it. The node order returned."""
        name, namespace = ds.metadata.name, ds.metadata.namespace
        budget = r.target.nodes.max_unavailable if r.target.nodes else 1
        seen: list[str] = []

        def step() -> list[str]:
            current = self._read(apps, name, namespace)
            with api_errors(f"daemonset {namespace}/{name}"):
                revision = current_revision(apps, current)
                pods = pods_by_node(core, current)
            order, eligible = node_order(core, current, pods, r.target, revision)
            seen[:] = order
            if not revision:
                return ["the controller has not made the template's revision yet"]
            container = current.spec.template.spec.containers[0]
            lag = {node: held.pod_lag(pods.get(node), f"the pod on {node}", revision, container) for node in order}
            for node in set(order) - eligible:
                lag[node] += " (its node is NotReady or tainted: not replaced)" if lag[node] else ""
            down = sum(1 for node in order if _unavailable(pods.get(node)))
            for node in wave(order):  # an unavailable pod of the old revision goes at once: it serves nothing
                pod = pods.get(node)
                if node not in eligible or pod is None or pod.metadata.deletion_timestamp is not None or \
                        (pod.metadata.labels or {}).get(held.REVISION) == revision:
                    continue
                if _unavailable(pod):
                    held.delete_pod(core, pod)
                elif down < budget:
                    held.delete_pod(core, pod)
                    down += 1
            return [lag[node] for node in wave(order) if lag[node]]

        held.wait_moved(f"daemonset {namespace}/{name}", r.progress_deadline_seconds, step, interval=1.0)
        return seen


def observe_daemon_set(apps: client.AppsV1Api, core: client.CoreV1Api, t: KubernetesTarget) -> TargetObservation:
    """What a DaemonSet runs: its template's image; settled when the pod on each of its nodes runs the
    current revision, Running and Ready."""
    with api_errors(f"daemonset {t.namespace}/{t.daemon_set}"):
        ds = apps.read_namespaced_daemon_set(t.daemon_set, t.namespace)
        revision = current_revision(apps, ds)
        pods = pods_by_node(core, ds)
    order, _ = node_order(core, ds, pods, t, revision)
    container = ds.spec.template.spec.containers[0]
    lag = [line for node in order if (line := held.pod_lag(pods.get(node), f"the pod on {node}", revision, container))]
    status = ds.status
    detail = "; ".join([f"{status.number_ready or 0}/{status.desired_number_scheduled or 0} nodes ready, revision "
                        f"{revision or '?'}", *lag[:3]])
    return TargetObservation(target=f"daemonset {t.namespace}/{t.daemon_set}", version=container.image,
                             ready=bool(revision) and not lag, detail=detail, instances=len(order) - len(lag),
                             revision=revision)
