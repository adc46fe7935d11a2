"""A/B test on the real cluster through the Gateway API router: requests with `x-beta: 1` (20% of the
simulated traffic) are served the new version, everyone else stays on stable, until decided or for
a duration."""

from __future__ import annotations

from models.spec import parse_rollout
from models.status import AbortRequest, Phase
from starters.commands import start_workflow
from tests.cluster_view import expect_view, traffic_share
from tests.helpers import canary_document, finished, paused_at
from tests.router_objects import create_router_objects, read_router_object, routing_for, weights
from tests.test_routers import BETA

OLD = "registry.local/web:1.0.0"


def ab_test(unique: str, namespace: str, image: str, **options) -> object:
    strategy = {"abTest": {"stableService": "web", "canaryService": "web-canary",
                           "trafficRouting": routing_for("gatewayAPI"), "audience": [BETA], **options}}
    return parse_rollout(canary_document(name=f"ab-{unique}", namespace=namespace, deployment="web", image=image,
                                         strategy=strategy))


async def test_audience_sees_the_new_version_until_decided(
    dev_client, cluster_worker, workload, kube_api, local_cluster, unique
):
    entry = create_router_objects(kube_api, workload, "gatewayAPI")
    version = f"ab-{unique}"
    handle = await start_workflow(dev_client, ab_test(unique, workload, f"registry.local/web:{version}", replicas=2),
                                  cluster_worker, "test")
    status = await paused_at(handle, 2)
    assert (status.canary_replicas, status.canary_weight) == (2, 0)
    assert status.routes == ["header ab-test: x-beta exact '1'"]
    served, _ = await traffic_share(local_cluster.simulator_url, workload, version, entry)
    assert 0.14 < served < 0.26, f"the 20% test audience, and only it, sees the new version: {served:.0%}"
    await handle.execute_update("abort", AbortRequest(reason="variant B converts worse", by="pm"))
    final = await finished(handle, 90)
    assert final.phase is Phase.DEGRADED and final.strategy == "abTest"
    await expect_view(kube_api, workload, (4, 4, OLD), (0, 0, f"registry.local/web:{version}"), [OLD] * 4)
    route = read_router_object(kube_api, workload, "gatewayAPI")
    assert weights(route, "gatewayAPI") == (100, 0) and len(route["spec"]["rules"]) == 1


async def test_a_timed_test_promotes_when_it_ends(dev_client, cluster_worker, workload, kube_api, unique):
    create_router_objects(kube_api, workload, "gatewayAPI")
    new = f"registry.local/web:ab-timed-{unique}"
    rollout = ab_test(unique, workload, new, duration="3s", afterDuration="promote")
    final = await finished(await start_workflow(dev_client, rollout, cluster_worker, "test"), 120)
    assert final.phase is Phase.HEALTHY and final.stable_image == new
    assert [h.event for h in final.history if h.event == "pause-ended"] == ["pause-ended"]
    await expect_view(kube_api, workload, (4, 4, new), None, [new] * 4)


async def test_a_never_ready_variant_ends_the_test_untouched(dev_client, cluster_worker, workload, kube_api, unique):
    from kubernetes import client

    from localcluster.behaviour import declare_images

    create_router_objects(kube_api, workload, "gatewayAPI")
    bad = f"registry.local/web:ab-never-{unique}"
    declare_images(client.CoreV1Api(kube_api), {bad: {"ready": "never"}})
    rollout = parse_rollout(canary_document(
        name=f"ab-{unique}", namespace=workload, deployment="web", image=bad, progress_deadline_seconds=10,
        strategy={"abTest": {"stableService": "web", "canaryService": "web-canary",
                             "trafficRouting": routing_for("gatewayAPI"), "audience": [BETA]}}))
    final = await finished(await start_workflow(dev_client, rollout, cluster_worker, "test"), 90)
    assert final.phase is Phase.DEGRADED and final.reason == "ProgressDeadlineExceeded"
    route = read_router_object(kube_api, workload, "gatewayAPI")
    assert weights(route, "gatewayAPI") == (100, 0) and len(route["spec"]["rules"]) == 1, "no route to it was added"
    await expect_view(kube_api, workload, (4, 4, OLD), (0, 0, bad), [OLD] * 4)
