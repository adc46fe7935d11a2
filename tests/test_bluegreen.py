"""Blue-green on the real local cluster: the preview runs beside the old version, the active Service
switches in one update, the old version stays warm for an instant switch-back, and a preview that
never becomes ready never receives active traffic."""

from __future__ import annotations

import time

from kubernetes import client

from localcluster.behaviour import declare_images
from models.approvals import PauseRequest, ResumeRequest
from models.spec import parse_rollout
from models.status import AbortRequest, Phase, PromoteRequest, Reason, RolloutStatus
from starters.commands import start_workflow
from tests.cluster_view import EndpointSampler, expect_view, pod_names, service_images, traffic_share
from tests.helpers import canary_document, eventually, finished, paused_at, read_audit, with_reason

OLD = "registry.local/web:1.0.0"


def blue_green(unique: str, namespace: str, image: str, deadline: int = 120, **options) -> object:
    strategy = {"blueGreen": {"activeService": "web", "previewService": "web-preview", **options}}
    return parse_rollout(canary_document(name=f"bg-{unique}", namespace=namespace, deployment="web", image=image,
                                         strategy=strategy, progress_deadline_seconds=deadline))


def selector(api, namespace: str, service: str = "web") -> dict:
    return client.CoreV1Api(api).read_namespaced_service(service, namespace).spec.selector


async def test_preview_then_switch_then_hand_back(dev_client, cluster_worker, workload, kube_api, local_cluster, unique):
    new = f"registry.local/web:bg-{unique}"
    rollout = blue_green(unique, workload, new, previewReplicaCount=2, autoPromotionEnabled=False,
                         scaleDownDelaySeconds=600)
    with EndpointSampler(kube_api, workload) as sampler:
        handle = await start_workflow(dev_client, rollout, cluster_worker, "test")
        status = await paused_at(handle, 1)
        assert status.canary_replicas == 2 and status.canary_weight == 0
        # Before promotion: the active Service serves only the old version, the preview only the new.
        assert service_images(kube_api, workload, "web") == [OLD] * 4
        assert service_images(kube_api, workload, "web-preview") == [new] * 2
        assert "pod-template-hash" in selector(kube_api, workload)
        old_pods = pod_names(kube_api, workload, "web")

        await handle.execute_update("promote", PromoteRequest(by="alice"))
        status = await paused_at(handle, 3)  # the scale-down window
        assert status.canary_weight == 100 and status.message.startswith("previous version kept warm")
        assert service_images(kube_api, workload, "web") == [new] * 4  # preview scaled to full, then switched
        assert pod_names(kube_api, workload, "web") == old_pods, "the old version is still running, untouched"
        await handle.execute_update("promote", PromoteRequest(by="alice"))  # end the window now
        final = await finished(handle, 120)
    assert final.phase is Phase.HEALTHY and final.stable_image == new
    await expect_view(kube_api, workload, (4, 4, new), None, [new] * 4)
    assert selector(kube_api, workload) == {"app": "web"}, "the Service's own selector is back"
    assert client.AppsV1Api(kube_api).list_namespaced_deployment(workload).items[0].metadata.name == "web"
    assert len(client.AppsV1Api(kube_api).list_namespaced_deployment(workload).items) == 1, "preview removed"
    assert min(len(s) for s in sampler.samples) >= 4, "the active Service never had fewer than 4 ready pods"
    assert all(set(s) in ({OLD}, {new}) for s in sampler.samples), "never both versions behind the active Service"
    switched = [s for s in sampler.samples if s == [new] * 4]
    assert switched and sampler.samples.index(switched[0]) > 0
    writes = [w["selector"] for w in read_audit(local_cluster.audit_log, workload, "web", "services")
              if w["verb"] != "create"]  # the workload's own creation
    assert len(writes) == 3, f"pin, switch, restore — each once: {writes}"
    assert writes[1] == {"app": "web", "rollouts.durable.dev/role": "preview"} and writes[2] == {"app": "web"}


async def test_switch_back_within_the_scale_down_delay_is_instant(dev_client, cluster_worker, workload, kube_api, unique):
    new = f"registry.local/web:bg-back-{unique}"
    rollout = blue_green(unique, workload, new, scaleDownDelaySeconds=600, abortScaleDownDelaySeconds=0)
    handle = await start_workflow(dev_client, rollout, cluster_worker, "test")
    await paused_at(handle, 3)  # auto-promoted, switched, old version warm
    assert service_images(kube_api, workload, "web") == [new] * 4
    old_pods = pod_names(kube_api, workload, "web")
    aborted_at = time.monotonic()
    await handle.execute_update("abort", AbortRequest(reason="checkout errors after the switch", by="bob"))
    await eventually(lambda: service_images(kube_api, workload, "web") == [OLD] * 4, timeout=10, interval=0.05,
                     what="active Service back on the old version")
    switch_back = time.monotonic() - aborted_at
    assert switch_back < 3, f"switch-back took {switch_back:.2f}s"
    assert pod_names(kube_api, workload, "web") == old_pods, "no pod was created to switch back"
    final = await finished(handle, 60)
    assert final.phase is Phase.DEGRADED and final.reason == "RolloutAborted"
    assert [h.event for h in final.history if h.event.startswith("switched")] == ["switched", "switched-back"]
    await expect_view(kube_api, workload, (4, 4, OLD), None, [OLD] * 4)
    assert pod_names(kube_api, workload, "web") == old_pods
    assert selector(kube_api, workload) == {"app": "web"}


async def test_never_ready_preview_never_takes_active_traffic(dev_client, cluster_worker, workload, kube_api, unique):
    bad = f"registry.local/web:bg-never-{unique}"
    declare_images(client.CoreV1Api(kube_api), {bad: {"ready": "never"}})
    rollout = blue_green(unique, workload, bad, deadline=10, abortScaleDownDelaySeconds=0)
    with EndpointSampler(kube_api, workload) as sampler:
        final = await finished(await start_workflow(dev_client, rollout, cluster_worker, "test"), 90)
    assert final.phase is Phase.DEGRADED and final.reason == "ProgressDeadlineExceeded"
    assert "web-preview" in final.message and final.message.endswith("; pods: 4 NotReady"), final.message
    assert all(s == [OLD] * 4 for s in sampler.samples), "the active Service only ever served the old version"
    await expect_view(kube_api, workload, (4, 4, OLD), None, [OLD] * 4)
    assert selector(kube_api, workload) == {"app": "web"}
    assert len(client.AppsV1Api(kube_api).list_namespaced_deployment(workload).items) == 1


async def test_abort_before_promotion_keeps_the_preview_for_the_abort_delay(
    dev_client, cluster_worker, workload, kube_api, unique
):
    new = f"registry.local/web:bg-abort-{unique}"
    rollout = blue_green(unique, workload, new, autoPromotionEnabled=False, abortScaleDownDelaySeconds=3)
    handle = await start_workflow(dev_client, rollout, cluster_worker, "test")
    await paused_at(handle, 1)
    await handle.execute_update("abort", AbortRequest(reason="failed smoke test on preview", by="carol"))
    apps = client.AppsV1Api(kube_api)

    async def keeping_preview():
        return "aborted: preview kept" in (await handle.query("status", result_type=RolloutStatus)).message

    await eventually(keeping_preview, timeout=10, what="abort scale-down delay")
    assert apps.read_namespaced_deployment("web-preview", workload).status.ready_replicas == 4
    final = await finished(handle, 60)
    assert final.phase is Phase.DEGRADED and final.reason == "RolloutAborted"
    assert "switched" not in [h.event for h in final.history]
    await expect_view(kube_api, workload, (4, 4, OLD), None, [OLD] * 4)
    assert len(apps.list_namespaced_deployment(workload).items) == 1
    assert selector(kube_api, workload) == {"app": "web"}


async def test_gradual_shift_through_a_router_then_switch(
    dev_client, cluster_worker, workload, kube_api, local_cluster, unique
):
    """Seed 001: instead of a hard switch, 25/50/100% through the Istio VirtualService (active = stable
    destination, preview = canary destination), held at each; then the active Service switches."""
    from localcluster.traffic import ANNOTATION_RPS
    custom = client.CustomObjectsApi(kube_api)
    body = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "web", "annotations": {ANNOTATION_RPS: "250"}},
            "spec": {"hosts": ["web"], "http": [{"name": "primary", "route": [
                {"destination": {"host": "web"}, "weight": 100}, {"destination": {"host": "web-preview"}, "weight": 0}]}]}}
    custom.create_namespaced_custom_object("networking.istio.io", "v1", workload, "virtualservices", body)
    version = f"bg-shift-{unique}"
    rollout = blue_green(unique, workload, f"registry.local/web:{version}", scaleDownDelaySeconds=0,
                         trafficRouting={"istio": {"virtualService": {"name": "web"}}},
                         gradualShift={"weights": [25, 50, 100], "hold": "3s"})
    handle = await start_workflow(dev_client, rollout, cluster_worker, "test")
    status = await paused_at(handle, 2)
    assert status.canary_weight == 25 and service_images(kube_api, workload, "web") == [OLD] * 4
    # `rollout pause` keeps the weight past its hold: the share is measured with nothing about to change it
    await handle.execute_update("pause", PauseRequest(by="sre", comment="measure 25%"))
    status = await with_reason(handle, Reason.PAUSED_BY_USER.value, timeout=30)
    assert (status.current_step, status.canary_weight) == (2, 25), status
    served, _ = await traffic_share(local_cluster.simulator_url, workload, version, "virtualservice/web", seconds=2.5)
    assert 0.15 < served < 0.35, f"25% shifted: the new version served {served:.0%}"
    await handle.execute_update("resume", ResumeRequest(by="sre"))
    final = await finished(handle, 120)
    assert final.phase is Phase.HEALTHY
    writes = [[d["weight"] for d in w["body"]["spec"]["http"][0]["route"]]
              for w in read_audit(local_cluster.audit_log, workload, "web", "virtualservices") if w["verb"] == "update"]
    assert writes == [[75, 25], [50, 50], [0, 100], [100, 0]], writes
    await expect_view(kube_api, workload, (4, 4, f"registry.local/web:{version}"), None,
                      [f"registry.local/web:{version}"] * 4)


async def test_abort_while_the_preview_scales_up(dev_client, cluster_worker, workload, kube_api, unique):
    slow = f"registry.local/web:bg-slow-{unique}"
    declare_images(client.CoreV1Api(kube_api), {slow: {"readyDelaySeconds": 30}})
    rollout = blue_green(unique, workload, slow, abortScaleDownDelaySeconds=0)
    apps = client.AppsV1Api(kube_api)

    def scaling():
        try:
            return apps.read_namespaced_deployment("web-preview", workload).spec.replicas == 4
        except client.ApiException:
            return False

    with EndpointSampler(kube_api, workload) as sampler:
        handle = await start_workflow(dev_client, rollout, cluster_worker, "test")
        await eventually(scaling, timeout=30, what="preview scaling up")
        await handle.execute_update("abort", AbortRequest(reason="wrong build", by="dave"))
        final = await finished(handle, 60)
    assert final.phase is Phase.DEGRADED and final.reason == "RolloutAborted"
    assert all(s == [OLD] * 4 for s in sampler.samples)
    await expect_view(kube_api, workload, (4, 4, OLD), None, [OLD] * 4)
    assert len(apps.list_namespaced_deployment(workload).items) == 1
    assert selector(kube_api, workload) == {"app": "web"}
