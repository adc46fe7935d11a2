"""Rolling update and recreate on the real local cluster: the Deployment controller does the work
with the strategy we set; a failing or aborted roll-out is undone to the previous revision."""

from __future__ import annotations

import pytest
from kubernetes import client

from localcluster.behaviour import declare_images
from models.spec import parse_rollout
from models.status import AbortRequest, Phase
from starters.commands import start_workflow
from tests.cluster_view import EndpointSampler, expect_view
from tests.helpers import canary_document, eventually, finished, read_audit

OLD = "registry.local/web:1.0.0"


def rollout_of(unique: str, namespace: str, image: str, strategy: dict, deadline: int = 120):
    return parse_rollout(canary_document(name=f"web-{unique}", namespace=namespace, deployment="web", image=image,
                                         strategy=strategy, progress_deadline_seconds=deadline))


async def test_rolling_update_keeps_capacity_and_finishes(
    dev_client, cluster_worker, workload, kube_api, local_cluster, unique
):
    new = f"registry.local/web:roll-{unique}"
    declare_images(client.CoreV1Api(kube_api), {new: {"readyDelaySeconds": 1}})
    rollout = rollout_of(unique, workload, new, {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
    with EndpointSampler(kube_api, workload) as sampler:
        final = await finished(await start_workflow(dev_client, rollout, cluster_worker, "test"), 90)
    assert final.phase is Phase.HEALTHY and final.stable_image == new
    await expect_view(kube_api, workload, (4, 4, new), None, [new] * 4)
    assert min(len(s) for s in sampler.samples) >= 4, "maxUnavailable 0: never fewer than 4 ready endpoints"
    assert any(OLD in s and new in s for s in sampler.samples), "a rolling update serves both versions for a while"
    [patch] = [w for w in read_audit(local_cluster.audit_log, workload, "web") if w["verb"] == "patch"]
    assert patch["image"] == new


async def test_recreate_never_serves_both_versions(dev_client, cluster_worker, workload, kube_api, unique):
    new = f"registry.local/web:recreate-{unique}"
    rollout = rollout_of(unique, workload, new, {"recreate": {}})
    with EndpointSampler(kube_api, workload) as sampler:
        final = await finished(await start_workflow(dev_client, rollout, cluster_worker, "test"), 90)
    assert final.phase is Phase.HEALTHY
    await expect_view(kube_api, workload, (4, 4, new), None, [new] * 4)
    assert not any(OLD in s and new in s for s in sampler.samples), "old and new never behind the Service together"
    assert any(s == [] for s in sampler.samples), "all old pods stopped before new ones started"


async def test_never_ready_rolling_update_is_undone(dev_client, cluster_worker, workload, kube_api, unique):
    bad = f"registry.local/web:never-{unique}"
    declare_images(client.CoreV1Api(kube_api), {bad: {"ready": "never"}})
    rollout = rollout_of(unique, workload, bad, {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}, deadline=10)
    with EndpointSampler(kube_api, workload) as sampler:
        final = await finished(await start_workflow(dev_client, rollout, cluster_worker, "test"), 90)
    assert final.phase is Phase.DEGRADED and final.reason == "ProgressDeadlineExceeded"
    assert final.message.endswith("; pods: 1 NotReady"), final.message
    assert final.stable_image == OLD
    assert [h.event for h in final.history][-3:] == ["undoing", "undone", "finished"]
    await expect_view(kube_api, workload, (4, 4, OLD), None, [OLD] * 4)
    assert min(len(s) for s in sampler.samples) >= 4, "the unready version never took capacity away"


@pytest.mark.parametrize("strategy", [{"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}, {"recreate": {}}],
                         ids=["rollingUpdate", "recreate"])
async def test_abort_during_a_roll_out_undoes_it(strategy, dev_client, cluster_worker, workload, kube_api, unique):
    slow = f"registry.local/web:slow-{next(iter(strategy)).lower()}-{unique}"
    declare_images(client.CoreV1Api(kube_api), {slow: {"readyDelaySeconds": 5}})
    handle = await start_workflow(dev_client, rollout_of(unique, workload, slow, strategy), cluster_worker, "test")
    apps = client.AppsV1Api(kube_api)
    await eventually(lambda: apps.read_namespaced_deployment("web", workload).spec.template.spec.containers[0].image
                     == slow, what="roll-out under way")
    await handle.execute_update("abort", AbortRequest(reason="wrong build", by="carol"))
    final = await finished(handle, 90)
    assert final.phase is Phase.DEGRADED and final.reason == "RolloutAborted" and final.stable_image == OLD
    await expect_view(kube_api, workload, (4, 4, OLD), None, [OLD] * 4)


async def test_a_deployment_held_by_another_rollout_is_refused_untouched(
    dev_client, cluster_worker, workload, kube_api, local_cluster, unique
):
    from models.status import PromoteRequest
    from tests.helpers import paused_at

    canary = parse_rollout(canary_document(name=f"canary-{unique}", namespace=workload, deployment="web",
                                           image="registry.local/web:2.0.0",
                                           steps=[{"setWeight": 25}, {"pause": {}}, {"setWeight": 100}]))
    held = await start_workflow(dev_client, canary, cluster_worker, "test")
    await paused_at(held, 1)
    before = [w for w in read_audit(local_cluster.audit_log, workload, "web") if w["verb"] == "patch"]

    rolling = rollout_of(unique, workload, "registry.local/web:9.9.9", {"rollingUpdate": {"maxSurge": 1}})
    refused = await finished(await start_workflow(dev_client, rolling, cluster_worker, "test"), 60)
    assert refused.phase is Phase.DEGRADED and refused.reason == "InvalidTarget"
    assert refused.message.startswith(f"deployment {workload}/web: {canary.rollout_id} holds it for a canary")
    assert [w for w in read_audit(local_cluster.audit_log, workload, "web") if w["verb"] == "patch"] == before

    await held.execute_update("promote", PromoteRequest(by="test"))
    assert (await finished(held, 60)).phase is Phase.HEALTHY
    # Released: the same rolling rollout now goes through.
    assert (await finished(await start_workflow(dev_client, rolling, cluster_worker, "test"), 90)).phase is Phase.HEALTHY


async def test_never_ready_recreate_is_undone(dev_client, cluster_worker, workload, kube_api, unique):
    bad = f"registry.local/web:never-recreate-{unique}"
    declare_images(client.CoreV1Api(kube_api), {bad: {"ready": "never"}})
    rollout = rollout_of(unique, workload, bad, {"recreate": {}}, deadline=10)
    final = await finished(await start_workflow(dev_client, rollout, cluster_worker, "test"), 90)
    assert final.phase is Phase.DEGRADED and final.reason == "ProgressDeadlineExceeded"
    assert final.stable_image == OLD and [h.event for h in final.history][-3:] == ["undoing", "undone", "finished"]
    await expect_view(kube_api, workload, (4, 4, OLD), None, [OLD] * 4)
