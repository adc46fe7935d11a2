"""StatefulSets rolled as a canary by their partition, on the real API server and the real StatefulSet and
PersistentVolume controllers (kube-controller-manager v1.20.2): the highest ordinals take the new revision
step by step, every one Running and Ready before the next step; abort puts the previous revision back
ordinal by ordinal and the partition where it was; OnDelete StatefulSets are moved by deleting pods one
at a time; no claim is ever deleted or replaced."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from kubernetes import client
from temporalio.exceptions import ApplicationError

from activities.targets.kubernetes.client import KubeClients
from activities.targets.kubernetes.observe import ObserveActivities
from activities.targets.kubernetes.statefulset import PARKED, StatefulSetActivities
from localcluster.behaviour import declare_images
from localcluster.workload import deploy_stateful_set
from models.approvals import SetWeightRequest
from models.kubernetes import WorkloadInput
from models.spec import SpecError, parse_rollout
from models.status import AbortRequest, Phase, PromoteRequest
from starters.commands import start_workflow
from tests.cluster_view import traffic_share
from tests.helpers import canary_document, eventually, finished, paused_at, read_audit

OLD, NEW = "registry.local/db:1.0.0", "registry.local/db:2.0.0"


def stateful_rollout(name: str, namespace: str, steps: list[dict]) -> object:
    document = canary_document(name=name, namespace=namespace, image=NEW, steps=steps)
    document["spec"]["target"]["kubernetes"] = {"context": "local", "namespace": namespace, "statefulSet": "db"}
    document["spec"]["strategy"] = {"canary": {"steps": steps}}
    return parse_rollout(document)


def pods_view(core: client.CoreV1Api, namespace: str) -> dict[str, tuple[str, str]]:
    """db-N -> (image, controller-revision-hash) of the pods not being deleted."""
    pods = core.list_namespaced_pod(namespace, label_selector="app=db").items
    return {p.metadata.name: (p.spec.containers[0].image, p.metadata.labels.get("controller-revision-hash"))
            for p in pods if p.metadata.deletion_timestamp is None}


def claims(core: client.CoreV1Api, namespace: str) -> dict[str, tuple[str, str]]:
    """Each claim's uid and the volume it is bound to: the same before and after any rollout."""
    return {c.metadata.name: (c.metadata.uid, c.spec.volume_name)
            for c in core.list_namespaced_persistent_volume_claim(namespace).items}


async def _with_canary(handle, count: int):
    from models.status import RolloutStatus

    status = await handle.query("status", result_type=RolloutStatus)
    return status if status.canary_replicas == count else None


@pytest.fixture
def database(kube_api, unique):
    namespace = f"sts-{unique}"
    deploy_stateful_set(kube_api, namespace, "db", OLD, replicas=3, rps=150)
    yield namespace
    client.CoreV1Api(kube_api).delete_namespace(namespace, propagation_policy="Background")


async def test_partition_steps_then_abort_puts_each_ordinal_back(
    dev_server, dev_client, cluster_worker, database, kube_api, local_cluster, unique
):
    ns, core, apps = database, client.CoreV1Api(kube_api), client.AppsV1Api(kube_api)
    before = apps.read_namespaced_stateful_set("db", ns)
    old_revision = before.status.current_revision
    volumes = claims(core, ns)
    assert len(volumes) == 3 and all(v[1] for v in volumes.values()), f"each ordinal's claim bound: {volumes}"

    rollout = stateful_rollout(f"db-{unique}", ns, [{"setWeight": 33}, {"pause": {}}, {"setWeight": 66}, {"pause": {}},
                                                    {"setWeight": 100}])
    handle = await start_workflow(dev_client, rollout, cluster_worker, "test")
    status = await paused_at(handle, 1, timeout=90)
    assert (status.canary_replicas, status.stable_replicas) == (1, 2)
    sts = apps.read_namespaced_stateful_set("db", ns)
    assert sts.spec.update_strategy.rolling_update.partition == 2
    new_revision = sts.status.update_revision
    assert new_revision != old_revision
    assert pods_view(core, ns) == {"db-0": (OLD, old_revision), "db-1": (OLD, old_revision), "db-2": (NEW, new_revision)}
    share, _ = await traffic_share(local_cluster.simulator_url, ns, "2.0.0", service="db", seconds=3.0)
    assert 0.15 < share < 0.55, f"one ordinal of three updated, it served {share:.0%}"

    other = WorkloadInput(rollout_id="rollout/test/someone-else", target=rollout.spec.target.kubernetes, image=NEW,
                             progress_deadline_seconds=30)
    clients = KubeClients(str(local_cluster.kubeconfig))
    with pytest.raises(ApplicationError) as refused:  # a second rollout of the same StatefulSet
        StatefulSetActivities(clients).prepare_stateful_canary(other)
    clients.close()
    assert refused.value.non_retryable and f"is being rolled out by {rollout.rollout_id}" in str(refused.value)

    await handle.execute_update("promote", PromoteRequest(by="alice"))
    status = await paused_at(handle, 3, timeout=90)
    assert (status.canary_replicas, status.stable_replicas) == (2, 1)
    assert apps.read_namespaced_stateful_set("db", ns).spec.update_strategy.rolling_update.partition == 1
    assert pods_view(core, ns) == {"db-0": (OLD, old_revision), "db-1": (NEW, new_revision), "db-2": (NEW, new_revision)}

    # back to one ordinal (a setWeight decision): the partition goes up and db-1, below it, is deleted and comes
    # back on the current revision (the controller moves nothing below a partition by itself)
    await handle.execute_update("setWeight", SetWeightRequest(by="alice", weight=33))
    status = await eventually(lambda: _with_canary(handle, 1), timeout=90, what="one ordinal updated again")
    assert pods_view(core, ns) == {"db-0": (OLD, old_revision), "db-1": (OLD, old_revision), "db-2": (NEW, new_revision)}

    await handle.execute_update("abort", AbortRequest(by="alice", reason="replication lag"))
    final = await finished(handle, 90)
    assert final.phase is Phase.DEGRADED and final.reason == "RolloutAborted", final.message
    after = apps.read_namespaced_stateful_set("db", ns)
    assert after.spec.template.spec.containers[0].image == OLD
    assert after.spec.update_strategy.rolling_update.partition == 0, "the partition where it was"
    assert after.status.update_revision == old_revision, "the previous ControllerRevision, reused"
    assert pods_view(core, ns) == {f"db-{o}": (OLD, old_revision) for o in range(3)}
    assert not any(k.startswith("rollouts.durable.dev/") for k in after.metadata.annotations or {})
    assert claims(core, ns) == volumes, "no claim deleted or replaced"
    partitions = [row["body"]["spec"]["updateStrategy"]["rollingUpdate"]["partition"]
                  for row in read_audit(local_cluster.audit_log, ns, "db", resource="statefulsets")
                  if row["verb"] == "patch" and "updateStrategy" in (row["body"].get("spec") or {})]
    assert partitions == [PARKED, 2, 1, 2, 0], f"each partition written once, in order: {partitions}"
    undo = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "starters.cli", "undo", rollout.rollout_id],
                                   capture_output=True, text=True, env={**os.environ, "TEMPORAL_ADDRESS": dev_server.address})
    assert undo.returncode == 2 and "a StatefulSet is rolled only as a canary, in place" in undo.stderr, undo.stderr


async def test_on_delete_pods_replaced_highest_first_one_at_a_time(
    dev_client, cluster_worker, kube_api, local_cluster, unique
):
    ns = f"sto-{unique}"
    deploy_stateful_set(kube_api, ns, "db", OLD, replicas=3, rps=50, on_delete=True)
    core, apps = client.CoreV1Api(kube_api), client.AppsV1Api(kube_api)
    try:
        volumes = claims(core, ns)
        rollout = stateful_rollout(f"dbo-{unique}", ns, [{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}])
        handle = await start_workflow(dev_client, rollout, cluster_worker, "test")
        await paused_at(handle, 1, timeout=90)
        sts = apps.read_namespaced_stateful_set("db", ns)
        assert sts.spec.update_strategy.type == "OnDelete"
        new_revision = sts.status.update_revision
        view = pods_view(core, ns)
        assert [view[f"db-{o}"][0] for o in range(3)] == [OLD, NEW, NEW], view  # 50 % of 3: two, the highest
        await handle.execute_update("promote", PromoteRequest(by="alice"))
        final = await finished(handle, 90)
        assert final.phase is Phase.HEALTHY, final.message
        assert pods_view(core, ns) == {f"db-{o}": (NEW, new_revision) for o in range(3)}
        clients = KubeClients(str(local_cluster.kubeconfig))  # v1.20 leaves an OnDelete currentRevision behind:
        seen = ObserveActivities(clients).observe_kubernetes_target(rollout.spec.target.kubernetes)  # the pods say
        clients.close()
        assert seen.ready and seen.version == NEW and seen.instances == 3, seen
        first_deletes = {o: min(row["at"] for row in read_audit(local_cluster.audit_log, ns, f"db-{o}", resource="pods")
                                if row["verb"] == "delete") for o in range(3)}  # ours; the kubelet's confirmation follows
        assert sorted(first_deletes, key=first_deletes.get, reverse=False) == [2, 1, 0], first_deletes
        assert claims(core, ns) == volumes
    finally:
        core.delete_namespace(ns, propagation_policy="Background")


async def test_a_canary_never_ready_is_aborted_by_a_forced_rollback(
    dev_client, cluster_worker, database, kube_api, unique
):
    """The controller's OrderedReady update waits forever for a pod that is not Ready, even after the
    template is put back (Kubernetes' "forced rollback"): abort deletes it, and it comes back on the old
    revision."""
    ns, core, apps = database, client.CoreV1Api(kube_api), client.AppsV1Api(kube_api)
    bad = f"registry.local/db:3.0.0-{unique}"
    declare_images(core, {bad: {"ready": "never"}})
    old_revision = apps.read_namespaced_stateful_set("db", ns).status.current_revision
    document = canary_document(name=f"dbx-{unique}", namespace=ns, image=bad, progress_deadline_seconds=10)
    document["spec"]["target"]["kubernetes"] = {"context": "local", "namespace": ns, "statefulSet": "db"}
    document["spec"]["strategy"] = {"canary": {"steps": [{"setWeight": 33}, {"setWeight": 100}]}}
    rollout = parse_rollout(document)
    final = await finished(await start_workflow(dev_client, rollout, cluster_worker, "test"), 120)
    assert final.phase is Phase.DEGRADED and final.reason == "ProgressDeadlineExceeded", final.message
    assert "db-2 is not ready" in final.message, final.message
    assert pods_view(core, ns) == {f"db-{o}": (OLD, old_revision) for o in range(3)}, "db-2 back on the old revision"
    after = apps.read_namespaced_stateful_set("db", ns)
    assert after.spec.update_strategy.rolling_update.partition == 0 and not any(
        k.startswith("rollouts.durable.dev/") for k in after.metadata.annotations or {})


@pytest.mark.parametrize(("strategy", "extra", "field"), [
    ({"blueGreen": {"activeService": "db", "previewService": "db-preview"}}, {}, "strategy.blueGreen"),
    ({"rollingUpdate": {}}, {}, "strategy.rollingUpdate"),
    ({"canary": {"stableService": "db", "canaryService": "db-canary", "steps": [{"setWeight": 50}]}}, {},
     "strategy.canary.stableService"),
    ({"canary": {"trafficRouting": {"nginx": {"stableIngress": "db"}}, "steps": [{"setWeight": 50}]}}, {},
     "strategy.canary.trafficRouting.nginx"),
    ({"canary": {"steps": [{"setWeight": 50}, {"setCanaryScale": {"replicas": 1}}]}}, {},
     "strategy.canary.steps[1].setCanaryScale"),
    ({"canary": {"dynamicStableScale": True, "steps": [{"setWeight": 50}]}}, {}, "strategy.canary.dynamicStableScale"),
    ({"canary": {"steps": [{"setWeight": 50}]}}, {"rollbackWindow": {"duration": "10m"}}, "rollbackWindow"),
])
def test_what_a_stateful_set_cannot_take_is_refused_naming_the_field(strategy, extra, field):
    document = canary_document(name="db", namespace="data", image=NEW)
    document["spec"]["target"]["kubernetes"] = {"namespace": "data", "statefulSet": "db"}
    document["spec"]["strategy"] = strategy
    document["spec"].update(extra)
    with pytest.raises(SpecError) as refused:
        parse_rollout(document)
    assert f"spec.{field}: " in str(refused.value), str(refused.value)
    document["spec"]["target"]["kubernetes"]["deployment"] = "web"
    with pytest.raises(SpecError, match="name exactly one workload: deployment, statefulSet or daemonSet"):
        parse_rollout(document)


@pytest.mark.parametrize(("change", "problem"), [
    ({"onFailure": "rollbackCompleted"}, "stages[0].onFailure: rollbackCompleted undoes a target in place"),
    ({"overrides": {"deployment": "db2"}}, "stages[0].overrides.deployment: the template rolls StatefulSet db"),
])
def test_a_pipeline_stage_cannot_undo_or_rename_a_stateful_set(change, problem):
    from models.pipeline import parse_pipeline
    from tests.pipeline_helpers import pipeline_document, stage

    first = stage("prod", "data", ["local-1"], **change)
    first["rollout"]["spec"]["target"]["kubernetes"] = {"context": "local-1", "namespace": "data", "statefulSet": "db"}
    first["rollout"]["spec"]["strategy"] = {"canary": {"steps": [{"setWeight": 50}]}}
    with pytest.raises(SpecError) as refused:
        parse_pipeline(pipeline_document("db", NEW, [first]))
    assert problem in str(refused.value), str(refused.value)
