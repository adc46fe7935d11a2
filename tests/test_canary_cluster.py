"""The canary on the dev server and the real local Kubernetes: each weight shows up as replica counts
and Service endpoints, the simulated traffic follows them, and promote / abort / a never-ready
version end in the right cluster state. The audit log is the cluster's own record of our writes."""

from __future__ import annotations

import asyncio

import pytest
from kubernetes import client
from temporalio.api.sdk.v1 import WorkflowMetadata

from localcluster.behaviour import declare_images
from models.status import AbortRequest, Phase, PromoteRequest, RolloutStatus
from starters.commands import start_workflow
from tests.cluster_view import expect_view, traffic_share
from tests.helpers import canary_rollout, finished, paused_at, read_audit

NEW = "registry.local/web:2.0.0"


async def test_weights_become_replicas_endpoints_and_traffic_then_promote(
    dev_client, cluster_worker, workload, kube_api, local_cluster, unique
):
    ns, old = workload, "registry.local/web:1.0.0"
    rollout = canary_rollout(name=f"web-{unique}", namespace=ns, deployment="web", image=NEW,
                             steps=[{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {}},
                                    {"setWeight": 100}])
    handle = await start_workflow(dev_client, rollout, cluster_worker, "test")

    await paused_at(handle, 1)
    # What the Web UI shows: the workflow's current details, from the built-in metadata query.
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    details = metadata.current_details
    assert "**Paused** · WaitingForPromote · step 2 of 5 · canary weight 25%" in details
    assert f"`rollout promote {rollout.rollout_id}`" in details and "Send a Signal `promote`" in details
    assert '{"by": "your-name"}' in details and "Send a Signal `abort`" in details
    assert {q.name for q in metadata.definition.query_definitions} >= {"status"}
    decisions = {"approve", "reject", "promote", "abort", "pause", "resume", "skipAnalysis", "setWeight"}
    assert {u.name for u in metadata.definition.update_definitions} == decisions
    assert {s.name for s in metadata.definition.signal_definitions} == decisions
    assert all(s.description for s in metadata.definition.signal_definitions)  # the Web UI lists them
    await expect_view(kube_api, ns, (3, 3, old), (1, 1, NEW), [NEW] + [old] * 3)
    share, _ = await traffic_share(local_cluster.simulator_url, ns, "2.0.0", service="web", seconds=3.0)
    assert 0.12 < share < 0.40, f"25% weight, the new version served {share:.0%}"

    await handle.execute_update("promote", PromoteRequest(by="alice"))
    status = await paused_at(handle, 3)
    assert (status.canary_replicas, status.stable_replicas, status.actual_weight) == (2, 2, 50.0)
    await expect_view(kube_api, ns, (2, 2, old), (2, 2, NEW), [NEW] * 2 + [old] * 2)
    share, _ = await traffic_share(local_cluster.simulator_url, ns, "2.0.0", service="web", seconds=3.0)
    assert 0.35 < share < 0.65, f"50% weight, the new version served {share:.0%}"

    await handle.execute_update("promote", PromoteRequest(by="alice"))
    final: RolloutStatus = await finished(handle, 90)
    assert final.phase is Phase.HEALTHY and final.stable_image == NEW
    await expect_view(kube_api, ns, (4, 4, NEW), None, [NEW] * 4)

    writes = read_audit(local_cluster.audit_log, ns, "web-canary")
    # each weight once, in order; then the canary drains to zero and is deleted
    assert [w["weight"] for w in writes if w["verb"] == "patch" and w["weight"]] == ["25", "50", "100", "0"]
    assert [w["verb"] for w in writes][0] == "create" and [w["verb"] for w in writes][-1] == "delete"
    stable = read_audit(local_cluster.audit_log, ns, "web")
    assert [w["replicas"] for w in stable if w["verb"] == "patch" and w["replicas"] is not None] == [3, 2, 0, 4]
    assert [w["image"] for w in stable if w["verb"] == "patch" and w["image"]] == [NEW]


async def test_abort_sends_traffic_back_to_stable(dev_client, cluster_worker, workload, kube_api, unique):
    ns, old = workload, "registry.local/web:1.0.0"
    rollout = canary_rollout(name=f"web-{unique}", namespace=ns, deployment="web", image=NEW,
                             steps=[{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}])
    handle = await start_workflow(dev_client, rollout, cluster_worker, "test")
    await paused_at(handle, 1)
    await expect_view(kube_api, ns, (2, 2, old), (2, 2, NEW), [NEW] * 2 + [old] * 2)
    await handle.execute_update("abort", AbortRequest(reason="p99 latency up", by="bob"))
    final: RolloutStatus = await finished(handle, 60)
    assert final.phase is Phase.DEGRADED and final.reason == "RolloutAborted"
    assert final.message == "p99 latency up"
    await expect_view(kube_api, ns, (4, 4, old), (0, 0, NEW), [old] * 4)

    # The same rollout again (a new run of the same ID) replaces the aborted canary and goes through.
    handle = await start_workflow(dev_client, rollout, cluster_worker, "test")
    await paused_at(handle, 1)
    await expect_view(kube_api, ns, (2, 2, old), (2, 2, NEW), [NEW] * 2 + [old] * 2)
    await handle.execute_update("promote", PromoteRequest(by="bob"))
    final = await finished(handle, 60)
    assert final.phase is Phase.HEALTHY
    await expect_view(kube_api, ns, (4, 4, NEW), None, [NEW] * 4)


@pytest.mark.parametrize("behaviour, reason", [("never", "NotReady"), ("crashloop", "CrashLoopBackOff")])
async def test_unready_version_hits_its_progress_deadline_and_rolls_back(
    dev_client, cluster_worker, workload, kube_api, unique, behaviour, reason
):
    ns, old = workload, "registry.local/web:1.0.0"
    bad = f"registry.local/web:{behaviour}-{unique}"
    declare_images(client.CoreV1Api(kube_api), {bad: {"ready": behaviour}})
    rollout = canary_rollout(name=f"web-{unique}", namespace=ns, deployment="web", image=bad,
                             progress_deadline_seconds=10, steps=[{"setWeight": 50}, {"pause": {}}])
    handle = await start_workflow(dev_client, rollout, cluster_worker, "test")
    final: RolloutStatus = await finished(handle, 90)
    assert final.phase is Phase.DEGRADED and final.reason == "ProgressDeadlineExceeded"
    assert f"deployment {ns}/web-canary: 0/2 ready after" in final.message
    assert final.message.endswith(f"; pods: 2 {reason}"), final.message
    await expect_view(kube_api, ns, (4, 4, old), (0, 0, bad), [old] * 4)


async def test_missing_target_is_refused_naming_the_object(dev_client, cluster_worker, workload, unique):
    rollout = canary_rollout(name=f"web-{unique}", namespace=workload, deployment="nope", image=NEW)
    handle = await start_workflow(dev_client, rollout, cluster_worker, "test")
    final: RolloutStatus = await finished(handle, 60)
    assert final.phase is Phase.DEGRADED and final.reason == "InvalidTarget"
    assert final.message == f"deployment {workload}/nope: not found"
    assert not any(h.event == "weight-set" for h in final.history)
