"""Analysis end to end: real PromQL over what a real Prometheus scraped from the traffic simulator,
whose per-image behaviour makes the canary good, bad or borderline."""

from __future__ import annotations

import time

from kubernetes import client

from localcluster.behaviour import declare_images
from models.spec import parse_rollout
from models.status import AbortRequest, Phase
from starters.commands import start_workflow
from tests.cluster_view import expect_view
from tests.helpers import canary_document, finished, paused_at, scraped
from tests.test_cli import cli  # noqa: F401 - the CLI fixture

OLD = "registry.local/web:1.0.0"
# `or vector(0)`: no 5xx at all is no series, not an empty answer.
ERROR_RATE = ('(sum(rate(sim_requests_total{namespace="{{args.namespace}}",version="{{args.version}}",code=~"5.."}[15s]))'
              ' or vector(0)) / sum(rate(sim_requests_total{namespace="{{args.namespace}}",version="{{args.version}}"}[15s]))')


def analysed(unique: str, namespace: str, version: str, address: str, metric: dict) -> object:
    document = canary_document(name=f"an-{unique}", namespace=namespace, deployment="web",
                               image=f"registry.local/web:{version}", steps=[
                                   {"setWeight": 50},
                                   {"analysis": {"templates": [{"templateName": "error-rate"}],
                                                 "args": [{"name": "namespace", "value": namespace},
                                                          {"name": "version", "value": version}]}},
                                   {"setWeight": 100}])
    document["spec"]["analysis"] = {"templates": [{
        "name": "error-rate", "args": [{"name": "namespace"}, {"name": "version"}],
        "metrics": [{"name": "error-rate", "initialDelay": "12s", "interval": "3s", "count": 3,
                     "provider": {"prometheus": {"address": address, "query": ERROR_RATE}}, **metric}],
    }]}
    return parse_rollout(document)


async def test_a_healthy_canary_passes_analysis_and_is_promoted(
    dev_client, cluster_worker, workload, kube_api, prometheus, unique
):
    version = f"good-{unique}"
    rollout = analysed(unique, workload, version, prometheus.url, {"successCondition": "result[0] <= 0.01"})
    started = time.monotonic()
    final = await finished(await start_workflow(dev_client, rollout, cluster_worker, "test"), 120)
    assert final.phase is Phase.HEALTHY, final.message
    metric = final.analysis[0]
    assert (metric.phase, metric.successful) == ("Successful", 3)
    assert all(m.value == "[0.0]" for m in metric.measurements)
    assert time.monotonic() - started < 60
    await expect_view(kube_api, workload, (4, 4, f"registry.local/web:{version}"), None,
                      [f"registry.local/web:{version}"] * 4)


async def test_a_five_percent_error_canary_is_rolled_back_automatically(
    dev_client, cluster_worker, workload, kube_api, prometheus, unique
):
    version = f"errors-{unique}"
    declare_images(client.CoreV1Api(kube_api), {f"registry.local/web:{version}": {"errorRate": 0.05}})
    rollout = analysed(unique, workload, version, prometheus.url,
                       {"successCondition": "result[0] <= 0.02", "failureCondition": "result[0] > 0.02"})
    final = await finished(await start_workflow(dev_client, rollout, cluster_worker, "test"), 120)
    assert final.phase is Phase.DEGRADED and final.reason == "AnalysisFailed"
    measured = final.analysis[0].measurements[-1]
    assert measured.phase == "Failed" and 0.02 < eval_first(measured.value) < 0.09
    assert f'version="{version}"' in measured.query and measured.query in final.message
    await expect_view(kube_api, workload, (4, 4, OLD), (0, 0, f"registry.local/web:{version}"), [OLD] * 4)


async def test_a_borderline_canary_is_inconclusive_and_waits(
    dev_client, cluster_worker, workload, kube_api, prometheus, unique
):
    version = f"borderline-{unique}"
    declare_images(client.CoreV1Api(kube_api), {f"registry.local/web:{version}": {"errorRate": 0.05}})
    rollout = analysed(unique, workload, version, prometheus.url,
                       {"successCondition": "result[0] < 0.01", "failureCondition": "result[0] > 0.2"})
    handle = await start_workflow(dev_client, rollout, cluster_worker, "test")
    status = await paused_at(handle, 1, timeout=90)
    assert status.reason == "AnalysisInconclusive" and status.analysis[0].phase == "Inconclusive"
    await handle.execute_update("abort", AbortRequest(reason="error rate too high to call", by="sre"))
    assert (await finished(handle, 60)).reason == "RolloutAborted"


async def test_prometheus_gone_mid_analysis_is_inconclusive_never_a_pass(
    dev_client, cluster_worker, workload, kube_api, local_cluster, tmp_path, unique
):
    from localcluster.prometheus import PrometheusServer

    target = local_cluster.simulator_url.removeprefix("http://").removesuffix("/metrics")
    own = PrometheusServer(tmp_path / "prometheus", targets=[target]).start()
    version = f"blind-{unique}"
    rollout = analysed(unique, workload, version, own.url, {
        "successCondition": "result[0] <= 0.01", "count": 20, "consecutiveErrorLimit": 2})
    try:
        await _blind(dev_client, cluster_worker, rollout, own)
    finally:
        own.stop()


async def _blind(dev_client, cluster_worker, rollout, own) -> None:
    handle = await start_workflow(dev_client, rollout, cluster_worker, "test")

    async def measured_once():
        from models.status import RolloutStatus
        status = await handle.query("status", result_type=RolloutStatus)
        return status.analysis and status.analysis[0].successful >= 1

    from tests.helpers import eventually
    await eventually(measured_once, timeout=60, what="a first good measurement")
    own.stop()
    status = await paused_at(handle, 1, timeout=90)
    metric = status.analysis[0]
    assert status.reason == "AnalysisInconclusive" and metric.phase == "Inconclusive"
    assert metric.consecutive_errors == 3 and "unreachable" in metric.message
    await handle.execute_update("abort", AbortRequest(reason="no metrics", by="sre"))
    await finished(handle, 60)


async def test_an_invalid_query_is_refused_with_prometheus_own_message(
    dev_client, cluster_worker, workload, kube_api, prometheus, unique
):
    rollout = analysed(unique, workload, f"badquery-{unique}", prometheus.url, {"successCondition": "result[0] < 1"})
    template = rollout.spec.analysis.templates[0]
    metric = template.metrics[0].model_copy(update={"provider": template.metrics[0].provider.model_copy(update={
        "prometheus": template.metrics[0].provider.prometheus.model_copy(update={"query": "sum(rate(sim_requests_total[5m]"})})})
    analysis = rollout.spec.analysis.model_copy(update={"templates": [template.model_copy(update={"metrics": [metric]})]})
    rollout = rollout.model_copy(update={"spec": rollout.spec.model_copy(update={"analysis": analysis})})
    final = await finished(await start_workflow(dev_client, rollout, cluster_worker, "test"), 90)
    assert final.phase is Phase.DEGRADED and "Prometheus rejected the query" in final.message
    assert "parse error" in final.message, final.message
    await expect_view(kube_api, workload, (4, 4, OLD), (0, 0, f"registry.local/web:badquery-{unique}"), [OLD] * 4)


def eval_first(value: str) -> float:
    import json

    return float(json.loads(value)[0])


async def test_blue_green_post_promotion_analysis_failing_switches_back(
    dev_client, cluster_worker, workload, kube_api, prometheus, unique
):
    from tests.cluster_view import pod_names, service_images

    version = f"bg-bad-{unique}"
    declare_images(client.CoreV1Api(kube_api), {f"registry.local/web:{version}": {"errorRate": 0.3}})
    document = analysed(unique, workload, version, prometheus.url,
                        {"successCondition": "result[0] <= 0.05", "failureCondition": "result[0] > 0.1"})
    document = document.model_dump(by_alias=True, exclude_none=True, mode="json")
    step = document["spec"]["strategy"]["canary"]["steps"][1]["analysis"]
    document["spec"]["strategy"] = {"blueGreen": {
        "activeService": "web", "previewService": "web-preview", "scaleDownDelaySeconds": 600,
        "abortScaleDownDelaySeconds": 0, "postPromotionAnalysis": step}}
    old_pods = pod_names(kube_api, workload, "web")
    final = await finished(await start_workflow(dev_client, parse_rollout(document), cluster_worker, "test"), 120)
    assert final.phase is Phase.DEGRADED and final.reason == "AnalysisFailed", final.message
    assert [h.event for h in final.history if h.event.startswith("switched")] == ["switched", "switched-back"]
    assert service_images(kube_api, workload, "web") == [OLD] * 4
    assert pod_names(kube_api, workload, "web") == old_pods, "switched back to the warm old pods"


async def test_the_judge_fails_a_slower_canary_against_its_baseline(
    dev_client, cluster_worker, workload, kube_api, prometheus, unique
):
    version = f"slow-{unique}"
    declare_images(client.CoreV1Api(kube_api), {f"registry.local/web:{version}": {"latencyMs": 400}})
    p50 = ('histogram_quantile(0.5, sum by (le) (rate(sim_request_duration_seconds_bucket{namespace="{{args.namespace}}",'
           'version="{{version}}"}[6s])))')
    document = canary_document(name=f"judge-{unique}", namespace=workload, deployment="web",
                               image=f"registry.local/web:{version}", steps=[
                                   {"setWeight": 50},
                                   {"analysis": {"templates": [{"templateName": "judge"}],
                                                 "args": [{"name": "namespace", "value": workload},
                                                          {"name": "canary", "value": version}]}},
                                   {"setWeight": 100}])
    document["spec"]["analysis"] = {"templates": [{
        "name": "judge", "args": [{"name": "namespace"}, {"name": "canary"}],
        "metrics": [{"name": "judge", "initialDelay": "20s", "successCondition": "result >= 90",
                     "failureCondition": "result < 75",
                     "provider": {"judge": {"address": prometheus.url, "lookback": "15s", "step": "1s",
                                            "baselineVersion": "1.0.0", "canaryVersion": "{{args.canary}}",
                                            "metrics": [{"name": "latency-p50", "query": p50, "critical": True}]}}}],
    }]}
    final = await finished(await start_workflow(dev_client, parse_rollout(document), cluster_worker, "test"), 120)
    assert final.phase is Phase.DEGRADED and final.reason == "AnalysisFailed", final.message
    measured = final.analysis[0].measurements[-1]
    assert measured.value == "0.0" and measured.query.startswith("judge: latency-p50 High")


def test_every_preset_query_runs_on_real_prometheus(workload, prometheus):
    """Each shipped template's PromQL is accepted by real Prometheus and judged on the simulator's data
    (CPU and memory read cAdvisor metrics this cluster does not have: no data, Inconclusive — never a pass)."""
    from activities.analysis import AnalysisActivities
    from models.analysis import MeasureInput
    from models.presets import preset_templates

    expected = {"success-rate": "Successful", "error-rate": "Successful", "latency-p95": "Successful",
                "cpu": "Inconclusive", "memory": "Inconclusive"}

    def measure_every_preset() -> dict[str, str]:
        seen = {}
        for template in preset_templates().values():
            args = {a.name: a.value for a in template.args if a.value is not None}
            args |= {"namespace": workload, "version": "1.0.0", "pods": "web-.*"}
            for metric in template.metrics:
                provider = metric.provider.model_copy(update={"prometheus": metric.provider.prometheus.model_copy(
                    update={"address": prometheus.url})})
                request = MeasureInput(rollout_id="test", template=template.name, args=args,
                                       metric=metric.model_copy(update={"provider": provider}))
                seen[metric.name] = AnalysisActivities().measure(request).phase
        return seen

    # Until the workload's traffic has been scraped for long enough, the rate queries have no data
    # (Inconclusive): measured again while one that should pass has none yet. Any other answer ends the
    # wait, and the last measurement must match entirely.
    def waiting_for_data(seen: dict[str, str]) -> bool:
        return any(seen.get(name) == "Inconclusive" for name, phase in expected.items() if phase == "Successful")

    deadline = time.monotonic() + 60
    seen = measure_every_preset()
    while waiting_for_data(seen) and time.monotonic() < deadline:
        time.sleep(1)
        seen = measure_every_preset()
    # The seed-004 subqueries need minutes of history: on a minutes-old workload they may have no data
    # yet (Inconclusive), but Prometheus accepted them (a rejected query raises) and they never pass wrongly.
    assert {seen.pop("errors-for-2m"), seen.pop("slow-for-1m")} <= {"Successful", "Inconclusive"}
    assert seen == expected


def test_rollout_analyze_runs_templates_once(prometheus, cli, workload, unique, tmp_path):
    """`rollout analyze`: a template of the spec's own on the running version passes (exit 0), one that
    cannot pass fails (exit 1), an unknown template is bad input (exit 2). (The shipped presets take
    two minutes each by design; their queries are checked above.)"""
    import yaml

    path = cli.spec(name=f"analyze-{unique}", namespace=workload, deployment="web", image="registry.local/web:1.0.0")
    document = yaml.safe_load(open(path))
    requests = {"prometheus": {"query": 'sum(rate(sim_requests_total{namespace="{{args.namespace}}"}[15s]))'}}
    document["spec"]["analysis"] = {"templates": [
        {"name": "impossible", "args": [{"name": "namespace", "value": workload}],
         "metrics": [{"name": "requests", "successCondition": "result[0] < 0", "provider": requests}]},
        {"name": "serving", "args": [{"name": "namespace"}],
         "metrics": [{"name": "requests", "successCondition": "result[0] > 10", "provider": requests,
                      "count": 2, "interval": "2s"}]}]}
    open(path, "w").write(yaml.safe_dump(document))
    scraped(prometheus.url, 'sum(rate(sim_requests_total{namespace="%s"}[15s]))' % workload, above=10)
    ok = cli("analyze", "-f", path, "--template", "serving", "--arg", f"namespace={workload}", timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "serving/requests: Successful (2/2 successful)" in ok.stdout
    failed = cli("analyze", "-f", path, "--template", "impossible", timeout=120)
    assert failed.returncode == 1 and "impossible/requests: Failed" in failed.stdout
    unknown = cli("analyze", "-f", path, "--template", "nope")
    assert unknown.returncode == 2 and "no analysis template 'nope'" in unknown.stderr


async def test_analysis_args_read_the_new_and_stable_pods_template_hashes(dev_client, cluster_worker, workload,
                                                                           kube_api, unique):
    """valueFrom.podTemplateHashValue (Argo's): a canary's analysis gets the pod-template-hash of the canary's
    pods (Latest) and of the stable pods (Stable), as the ReplicaSets of the Deployments' current revisions
    carry them while the analysis runs — read by the check itself from the apiserver when it is called."""
    from urllib.parse import parse_qs, urlsplit

    from tests.helpers import json_check

    apps = client.AppsV1Api(kube_api)

    def current_hash(name: str) -> str:
        deployment = apps.read_namespaced_deployment(name, workload)
        revision = deployment.metadata.annotations["deployment.kubernetes.io/revision"]
        owned = [rs for rs in apps.list_namespaced_replica_set(workload).items
                 if any(o.uid == deployment.metadata.uid for o in rs.metadata.owner_references or [])
                 and rs.metadata.annotations.get("deployment.kubernetes.io/revision") == revision]
        return owned[0].metadata.labels["pod-template-hash"]

    calls: list[dict] = []

    def check(path: str) -> dict:
        asked = {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}
        calls.append({"asked": asked, "actual": {"latest": current_hash("web-canary"), "stable": current_hash("web")}})
        return {"data": {"ok": True}}

    server = json_check(check)
    document = canary_document(name=f"hash-{unique}", namespace=workload, deployment="web",
                               image=f"registry.local/web:hashed-{unique}", steps=[
                                   {"setWeight": 50},
                                   {"analysis": {"templates": [{"templateName": "by-hash"}], "args": [
                                       {"name": "latest", "valueFrom": {"podTemplateHashValue": "Latest"}},
                                       {"name": "stable", "valueFrom": {"podTemplateHashValue": "Stable"}}]}},
                                   {"setWeight": 100}])
    document["spec"]["analysis"] = {"templates": [{"name": "by-hash", "args": [{"name": "latest"}, {"name": "stable"}],
                                                   "metrics": [{"name": "selected", "successCondition": "result == True",
                                                                "provider": {"web": {
        "url": f"http://127.0.0.1:{server.server_port}/check?latest={{{{args.latest}}}}&stable={{{{args.stable}}}}",
        "jsonPath": "data.ok"}}}]}]}
    try:
        final = await finished(await start_workflow(dev_client, parse_rollout(document), cluster_worker, "test"), 120)
    finally:
        server.shutdown()
    assert final.phase is Phase.HEALTHY, final.message
    assert len(calls) == 1 and calls[0]["asked"] == calls[0]["actual"], calls
    assert calls[0]["asked"]["latest"] != calls[0]["asked"]["stable"]
