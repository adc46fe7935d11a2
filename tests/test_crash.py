"""Crash mid-canary: the worker is a separate process, SIGKILLed while the rollout is paused at a step
and again while an activity is in flight; a new worker process picks the rollout up and it completes.
The kube-apiserver audit log (every write our engine made) shows each weight applied exactly once,
in order."""

from __future__ import annotations

import time

from kubernetes import client

from localcluster.behaviour import declare_images
from models.status import Phase, PromoteRequest, RolloutStatus
from starters.commands import start_workflow
from tests.helpers import canary_rollout, eventually, finished, paused_at, read_audit
from workflows.options import HEARTBEAT


async def test_worker_killed_while_paused_and_mid_activity(
    dev_server, dev_client, local_cluster, kube_api, workload, worker_processes, unique
):
    ns, queue = workload, f"crash-{unique}"
    new = f"registry.local/web:slow-{unique}"
    # The new version takes 4 s to become ready, so a setWeight activity is in flight long enough to kill.
    declare_images(client.CoreV1Api(kube_api), {new: {"readyDelaySeconds": 4}})
    rollout = canary_rollout(name=f"web-{unique}", namespace=ns, deployment="web", image=new,
                             steps=[{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"setWeight": 75},
                                    {"pause": {}}, {"setWeight": 100}])
    first = worker_processes(dev_server.address, queue)
    handle = await start_workflow(dev_client, rollout, queue, "test")

    # 1. Killed while paused at a step.
    await paused_at(handle, 1)
    first.kill()
    second = worker_processes(dev_server.address, queue)
    await paused_at(handle, 1)  # the new worker has it (a query replays it): see test_worker_killed_during_blue_green
    await handle.execute_update("promote", PromoteRequest(by="after-crash-1"))

    # 2. Killed while setWeight 50 is in flight: the canary was patched to 2 replicas, not yet ready.
    apps = client.AppsV1Api(kube_api)

    def mid_activity():
        canary = apps.read_namespaced_deployment("web-canary", ns)
        return canary.spec.replicas == 2 and (canary.status.ready_replicas or 0) < 2

    await eventually(mid_activity, timeout=30, interval=0.05, what="setWeight 50 in flight")
    second.kill()
    killed_at = time.monotonic()
    worker_processes(dev_server.address, queue)

    status = await paused_at(handle, 4, timeout=120)
    assert status.canary_weight == 75 and status.canary_replicas == 3
    await handle.execute_update("promote", PromoteRequest(by="after-crash-2"))
    final: RolloutStatus = await finished(handle, 120)
    assert final.phase is Phase.HEALTHY, final
    assert time.monotonic() - killed_at > HEARTBEAT.total_seconds(), "the retry came after the lost attempt's heartbeat timeout"

    canary_writes = read_audit(local_cluster.audit_log, ns, "web-canary")
    weights = [w["weight"] for w in canary_writes if w["verb"] == "patch" and w["weight"] not in (None, "0")]
    assert weights == ["25", "50", "75", "100"], f"each weight exactly once, in order: {weights}"
    steps = [int(w["step"]) for w in canary_writes if w["step"] not in (None, "-1")]
    assert steps == sorted(steps) and len(steps) == len(set(steps))
    stable_writes = read_audit(local_cluster.audit_log, ns, "web")
    replicas = [w["replicas"] for w in stable_writes if w["verb"] == "patch" and w["replicas"] is not None]
    assert replicas == [3, 2, 1, 0, 4], f"stable scaled once per step: {replicas}"
    assert [h.by for h in final.history if h.event == "promoted"] == ["after-crash-1", "after-crash-2"]


async def test_worker_killed_during_a_rolling_update(
    dev_server, dev_client, local_cluster, kube_api, workload, worker_processes, unique
):
    """The roll-out activity dies while the Deployment controller is rolling; the retry on a new
    worker finds its own patch (same workflow run) and only waits: one template change in the audit log."""
    ns, queue = workload, f"crash-roll-{unique}"
    new = f"registry.local/web:slow-roll-{unique}"
    declare_images(client.CoreV1Api(kube_api), {new: {"readyDelaySeconds": 3}})
    rollout = canary_rollout(name=f"web-{unique}", namespace=ns, deployment="web", image=new,
                             strategy={"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
    first = worker_processes(dev_server.address, queue)
    handle = await start_workflow(dev_client, rollout, queue, "test")
    apps = client.AppsV1Api(kube_api)

    def rolling_under_way():
        d = apps.read_namespaced_deployment("web", ns)
        return d.spec.template.spec.containers[0].image == new and (d.status.updated_replicas or 0) < 4

    await eventually(rolling_under_way, timeout=30, interval=0.05, what="rolling update under way")
    first.kill()
    worker_processes(dev_server.address, queue)
    final: RolloutStatus = await finished(handle, 120)
    assert final.phase is Phase.HEALTHY and final.stable_image == new
    patches = [w for w in read_audit(local_cluster.audit_log, ns, "web") if w["verb"] == "patch"]
    assert [w["image"] for w in patches] == [new], f"the template was changed exactly once: {patches}"
    deployment = apps.read_namespaced_deployment("web", ns)
    assert (deployment.status.ready_replicas, deployment.status.updated_replicas) == (4, 4)


async def test_worker_killed_during_blue_green(
    dev_server, dev_client, local_cluster, kube_api, workload, worker_processes, unique
):
    """SIGKILL while the preview is scaling up (mid-activity) and again while waiting for promotion:
    every write happens once — the active Service is pinned, switched and restored exactly once."""
    ns, queue = workload, f"crash-bg-{unique}"
    new = f"registry.local/web:slow-bg-{unique}"
    declare_images(client.CoreV1Api(kube_api), {new: {"readyDelaySeconds": 4}})
    rollout = canary_rollout(name=f"web-{unique}", namespace=ns, deployment="web", image=new, strategy={
        "blueGreen": {"activeService": "web", "previewService": "web-preview", "previewReplicaCount": 2,
                      "autoPromotionEnabled": False, "scaleDownDelaySeconds": 0, "abortScaleDownDelaySeconds": 0}})
    first = worker_processes(dev_server.address, queue)
    handle = await start_workflow(dev_client, rollout, queue, "test")
    apps = client.AppsV1Api(kube_api)

    def preview_scaling():
        try:
            preview = apps.read_namespaced_deployment("web-preview", ns)
        except client.ApiException:
            return False
        return preview.spec.replicas == 2 and (preview.status.ready_replicas or 0) < 2

    await eventually(preview_scaling, timeout=30, interval=0.05, what="preview scaling up")
    first.kill()
    second = worker_processes(dev_server.address, queue)
    await paused_at(handle, 1, timeout=120)
    second.kill()
    worker_processes(dev_server.address, queue)
    # Run 22: a promote sent straight to the fresh worker was refused "not paused (Progressing)" although the
    # history ends paused (checked on that run's server); the update's validator ran on a workflow the worker
    # had not yet replayed. A query first makes the worker replay it; the promote then meets the paused state.
    await paused_at(handle, 1, timeout=60)
    await handle.execute_update("promote", PromoteRequest(by="after-crash"))
    final: RolloutStatus = await finished(handle, 120)
    assert final.phase is Phase.HEALTHY and final.stable_image == new

    selectors = [w["selector"] for w in read_audit(local_cluster.audit_log, ns, "web", "services") if w["verb"] != "create"]
    assert [sorted(s) for s in selectors] == [
        ["app", "pod-template-hash"], ["app", "rollouts.durable.dev/role"], ["app"]
    ], f"pin, switch, restore — each exactly once: {selectors}"
    preview = read_audit(local_cluster.audit_log, ns, "web-preview")
    assert [w["verb"] for w in preview].count("create") == 1
    assert [w["replicas"] for w in preview if w["verb"] == "patch"] == [2, 4, 0], preview


async def test_worker_killed_between_measurements(
    dev_server, dev_client, local_cluster, kube_api, workload, worker_processes, unique
):
    """An analysis through the web provider (a local HTTP check answering JSON) loses nothing and counts
    nothing twice when the worker is SIGKILLed between measurements: the check is called exactly
    `count` times and every measurement is in the status."""
    from models.spec import parse_rollout
    from tests.helpers import canary_document, json_check

    calls: list[float] = []

    def check(path: str) -> dict:
        calls.append(time.monotonic())
        return {"data": {"healthy": True, "p99": 0.12}}

    server = json_check(check)
    queue = f"crash-analysis-{unique}"
    document = canary_document(name=f"web-{unique}", namespace=workload, deployment="web",
                               image=f"registry.local/web:checked-{unique}", steps=[
                                   {"setWeight": 25}, {"analysis": {"templates": [{"templateName": "smoke"}]}},
                                   {"setWeight": 100}])
    document["spec"]["analysis"] = {"templates": [{"name": "smoke", "metrics": [{
        "name": "p99", "count": 6, "interval": "2s", "successCondition": "result < 0.5",
        "provider": {"web": {"url": f"http://127.0.0.1:{server.server_port}/health", "jsonPath": "data.p99"}}}]}]}
    first = worker_processes(dev_server.address, queue)
    handle = await start_workflow(dev_client, parse_rollout(document), queue, "test")
    await eventually(lambda: len(calls) >= 2, timeout=60, interval=0.05, what="two measurements")
    time.sleep(0.5)  # the second measurement's completion has reached the server; the workflow waits on a timer
    first.kill()
    worker_processes(dev_server.address, queue)
    final: RolloutStatus = await finished(handle, 120)
    server.shutdown()
    assert final.phase is Phase.HEALTHY, final.message
    metric = final.analysis[0]
    assert (metric.successful, len(metric.measurements)) == (6, 6)
    assert len(calls) == 6, f"the check was called exactly count times: {len(calls)}"
    assert all(m.value == "0.12" for m in metric.measurements)
