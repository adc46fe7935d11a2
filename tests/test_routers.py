"""Each traffic router on the real local cluster with the upstream CRDs: after every step the weights,
header route and mirror are in the real objects (accepted by the API server's schema validation), and
the traffic simulator — which follows those objects — sends the matching share of requests."""

from __future__ import annotations

import pytest
from kubernetes import client

from models.spec import parse_rollout
from models.status import AbortRequest, Phase, PromoteRequest
from starters.commands import start_workflow
from tests.cluster_view import expect_view, traffic_share
from tests.helpers import canary_document, finished, paused_at, read_audit
from tests.router_objects import create_router_objects, read_router_object, routing_for, weights

OLD = "registry.local/web:1.0.0"
BETA = {"headerName": "x-beta", "headerValue": {"exact": "1"}}


def rollout(unique: str, namespace: str, router: str, image: str, steps: list, **canary) -> object:
    strategy = {"canary": {"stableService": "web", "canaryService": "web-canary",
                           "trafficRouting": routing_for(router), "steps": steps, **canary}}
    return parse_rollout(canary_document(name=f"r-{unique}", namespace=namespace, deployment="web", image=image,
                                         strategy=strategy))


@pytest.mark.parametrize("router", ["istio", "nginx", "gatewayAPI"])
async def test_router_weights_headers_and_mirror(
    router, dev_client, cluster_worker, workload, kube_api, local_cluster, unique
):
    entry = create_router_objects(kube_api, workload, router)
    version = f"router-{unique}"
    new = f"registry.local/web:{version}"
    steps = [{"setWeight": 25}, {"pause": {}}, {"setHeaderRoute": {"name": "beta", "match": [BETA]}}, {"pause": {}}]
    if router != "nginx":
        steps += [{"setMirrorRoute": {"name": "shadow", "percentage": 50}}, {"pause": {}}]
    handle = await start_workflow(dev_client, rollout(unique, workload, router, new, steps), cluster_worker, "test")
    url = local_cluster.simulator_url

    status = await paused_at(handle, 1)
    assert (status.canary_replicas, status.stable_replicas, status.canary_weight) == (1, 4, 25)
    assert weights(read_router_object(kube_api, workload, router), router) == (75, 25)
    served, _ = await traffic_share(url, workload, version, entry)
    assert 0.17 < served < 0.33, f"weight 25: the new version served {served:.0%}"

    await handle.execute_update("promote", PromoteRequest(by="test"))
    status = await paused_at(handle, 3)
    assert status.routes == ["header beta: x-beta exact '1'"]
    obj = read_router_object(kube_api, workload, router)
    if router == "nginx":
        assert obj["nginx.ingress.kubernetes.io/canary-by-header"] == "x-beta"
        assert obj["nginx.ingress.kubernetes.io/canary-by-header-value"] == "1"
    else:
        routes = obj["spec"]["http" if router == "istio" else "rules"]
        assert routes[0]["name"] == "beta" and len(routes) == 2
    served, _ = await traffic_share(url, workload, version, entry)
    assert 0.30 < served < 0.50, f"20% beta users + 25% of the rest = 40%: the new version served {served:.0%}"

    if router != "nginx":
        await handle.execute_update("promote", PromoteRequest(by="test"))
        status = await paused_at(handle, 5)
        assert status.routes[-1] == "mirror shadow: 50%"
        served, shadowed = await traffic_share(url, workload, version, entry)
        assert 0.30 < served < 0.50, "the mirror does not change who answers"
        assert 0.30 < shadowed < 0.50, f"50% of the 80% weighted requests are copied: {shadowed:.0%}"

    await handle.execute_update("promote", PromoteRequest(by="test"))
    final = await finished(handle, 120)
    assert final.phase is Phase.HEALTHY and final.routes == []
    await expect_view(kube_api, workload, (4, 4, new), None, [new] * 4)
    obj = read_router_object(kube_api, workload, router)
    if router == "nginx":
        assert obj == {}, "the canary Ingress is removed"
    else:
        assert weights(obj, router) == (100, 0)
        assert len(obj["spec"]["http" if router == "istio" else "rules"]) == 1, "our routes are removed"
        assert "rollouts.durable.dev/managed-routes" not in obj["metadata"].get("annotations", {})
    served, _ = await traffic_share(url, workload, version, entry, seconds=2)
    assert served == 1.0, "all traffic on the promoted stable"


async def test_abort_restores_stable_capacity_before_moving_traffic(
    dev_client, cluster_worker, workload, kube_api, local_cluster, unique
):
    """dynamicStableScale shrank stable to 2 of 4; an abort scales it back to 4 and waits until ready,
    only then sets the VirtualService back to stable, and only then scales the canary down."""
    create_router_objects(kube_api, workload, "istio")
    new = f"registry.local/web:abort-{unique}"
    handle = await start_workflow(dev_client, rollout(unique, workload, "istio", new, [{"setWeight": 50}, {"pause": {}}],
                                                      dynamicStableScale=True), cluster_worker, "test")
    status = await paused_at(handle, 1)
    assert (status.canary_replicas, status.stable_replicas) == (2, 2)
    await handle.execute_update("abort", AbortRequest(reason="latency", by="test"))
    final = await finished(handle, 90)
    assert final.phase is Phase.DEGRADED and final.reason == "RolloutAborted"
    await expect_view(kube_api, workload, (4, 4, OLD), (0, 0, new), [OLD] * 4)
    assert weights(read_router_object(kube_api, workload, "istio"), "istio") == (100, 0)

    log = local_cluster.audit_log
    stable_up = [w["at"] for w in read_audit(log, workload, "web") if w["replicas"] == 4][-1]
    vs_back = [w["at"] for w in read_audit(log, workload, "web", "virtualservices")
               if w["verb"] == "update"][-1]
    canary_down = [w["at"] for w in read_audit(log, workload, "web-canary") if w["replicas"] == 0][-1]
    assert stable_up < vs_back < canary_down


async def test_a_missing_router_object_is_refused_before_traffic_moves(
    dev_client, cluster_worker, workload, kube_api, local_cluster, unique
):
    bad = rollout(unique, workload, "gatewayAPI", "registry.local/web:2.0.0", [{"setWeight": 10}])
    final = await finished(await start_workflow(dev_client, bad, cluster_worker, "test"), 60)
    assert final.phase is Phase.DEGRADED and final.reason == "InvalidTarget"
    assert final.message == f"httproute {workload}/web: not found"
    canary = client.AppsV1Api(kube_api).read_namespaced_deployment("web-canary", workload)
    assert canary.spec.replicas == 0, "no canary pod was started"


async def test_istio_destination_rule_subsets(dev_client, cluster_worker, workload, kube_api, local_cluster, unique):
    """Subset-level Istio: one host, stable and canary subsets whose labels the router keeps on the right
    pods (the stable subset follows the stable pods' hash through promotion); the Service is not pinned."""
    from localcluster.traffic import ANNOTATION_RPS

    custom = client.CustomObjectsApi(kube_api)
    group = ("networking.istio.io", "v1", workload)
    custom.create_namespaced_custom_object(*group, "destinationrules", {
        "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "web"},
        "spec": {"host": "web", "subsets": [{"name": "stable", "labels": {"app": "web"}},
                                             {"name": "canary", "labels": {"app": "web"}}]}})
    custom.create_namespaced_custom_object(*group, "virtualservices", {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "web", "annotations": {ANNOTATION_RPS: "250"}},
        "spec": {"hosts": ["web"], "http": [{"name": "primary", "route": [
            {"destination": {"host": "web", "subset": "stable"}, "weight": 100},
            {"destination": {"host": "web", "subset": "canary"}, "weight": 0}]}]}})
    version = f"subset-{unique}"
    new = f"registry.local/web:{version}"
    strategy = {"canary": {"stableService": "web", "canaryService": "web-canary", "steps": [{"setWeight": 25}, {"pause": {}}],
                           "trafficRouting": {"istio": {"virtualService": {"name": "web"},
                                                        "destinationRule": {"name": "web"}}}}}
    handle = await start_workflow(dev_client, parse_rollout(canary_document(
        name=f"r-{unique}", namespace=workload, deployment="web", image=new, strategy=strategy)), cluster_worker, "test")
    await paused_at(handle, 1)
    subsets = {s["name"]: s["labels"] for s in custom.get_namespaced_custom_object(*group, "destinationrules", "web")["spec"]["subsets"]}
    assert subsets["canary"] == {"app": "web", "rollouts.durable.dev/role": "canary"}
    assert set(subsets["stable"]) == {"app", "pod-template-hash"}
    assert client.CoreV1Api(kube_api).read_namespaced_service("web", workload).spec.selector == {"app": "web"}
    served, _ = await traffic_share(local_cluster.simulator_url, workload, version, "virtualservice/web")
    assert 0.17 < served < 0.33, f"weight 25 through the subsets: {served:.0%}"

    await handle.execute_update("promote", PromoteRequest(by="test"))
    assert (await finished(handle, 120)).phase is Phase.HEALTHY
    await expect_view(kube_api, workload, (4, 4, new), None, [new] * 4)
    stable_hash = {s["name"]: s["labels"] for s in custom.get_namespaced_custom_object(
        *group, "destinationrules", "web")["spec"]["subsets"]}["stable"]["pod-template-hash"]
    pods = client.CoreV1Api(kube_api).list_namespaced_pod(workload).items
    assert {p.metadata.labels.get("pod-template-hash") for p in pods} == {stable_hash}, "the stable subset has the new pods"
    served, _ = await traffic_share(local_cluster.simulator_url, workload, version, "virtualservice/web", seconds=2)
    assert served == 1.0
