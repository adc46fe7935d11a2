"""`rollout worker` as an operator runs it: the deployment metrics and the Temporal SDK's on one
Prometheus endpoint, scraped by a real Prometheus, every query of the Grafana dashboard in `deploy/`
run against it; and a clean drain on SIGTERM."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from localcluster.devserver import free_port
from localcluster.prometheus import PrometheusServer
from models.approvals import AbortRequest, ApproveRequest
from models.spec import parse_rollout
from starters.commands import start_workflow
from tests.helpers import canary_document, eventually, finished, paused_at

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "durable-rollouts.json"
GRAFANA = {"$environment": ".*", "$__range": "10m", "$__rate_interval": "1m", "${datasource}": ""}


def query(prometheus: PrometheusServer, expr: str) -> list[dict]:
    answer = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", f"{expr}: {answer.get('error')}"
    return answer["data"]["result"]


def value(prometheus: PrometheusServer, expr: str) -> float | None:
    result = query(prometheus, expr)
    return float(result[0]["value"][1]) if result else None


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs = [target["expr"] for panel in panels for target in panel["targets"]]
    for grafana, concrete in GRAFANA.items():
        exprs = [e.replace(grafana, concrete) for e in exprs]
    return exprs


async def test_worker_serves_deployment_and_sdk_metrics_and_drains_on_sigterm(
    dev_server, dev_client, workload, worker_processes, unique, tmp_path
):
    port = free_port()
    queue = f"metrics-{unique}"
    worker = worker_processes(dev_server.address, queue, "--metrics-port", str(port))
    prometheus = PrometheusServer(tmp_path / "prometheus", targets=[f"127.0.0.1:{port}"]).start()
    try:
        rollout = parse_rollout(canary_document(name=f"web-{unique}", namespace=workload, deployment="web",
                                                image="registry.local/web:4.0.0",
                                                steps=[{"setWeight": 30}, {"pause": {}}, {"setWeight": 100}]))
        held = await start_workflow(dev_client, rollout, queue, "test")
        await paused_at(held, 1)
        running = f'{{rollout="{held.id}"}}'
        await eventually(lambda: value(prometheus, f"rollout_step{running}") == 2, timeout=30, what="rollout_step 2")
        assert value(prometheus, f"rollout_steps{running}") == 3
        assert value(prometheus, f"rollout_weight_ratio{running}") == 0.3
        assert value(prometheus, f'rollout_paused{{rollout="{held.id}",reason="WaitingForPromote"}}') == 1
        await held.execute_update("abort", AbortRequest(by="sre", reason="error budget"))
        assert (await finished(held, 90)).reason == "RolloutAborted"

        analysis = {"name": "up", "metrics": [{"name": "scraped", "successCondition": "result[0] >= 1",
                                               "provider": {"prometheus": {"address": prometheus.url,
                                                                           "query": "vector(1)"}}}]}
        document = canary_document(name=f"api-{unique}", namespace=workload, deployment="web",
                                   image="registry.local/web:4.1.0", steps=[
                                       {"setWeight": 50}, {"analysis": {"templates": [{"templateName": "up"}]}},
                                       {"approval": {"description": "go to 100%"}}, {"setWeight": 100}])
        document["spec"]["analysis"] = {"templates": [analysis]}
        approved = await start_workflow(dev_client, parse_rollout(document), queue, "test")
        await paused_at(approved, 2)
        await approved.execute_update("approve", ApproveRequest(by="alice"))
        assert (await finished(approved, 90)).phase.value == "Healthy"

        families = {f.name: f for f in text_string_to_metric_families(httpx.get(f"http://127.0.0.1:{port}/metrics").text)}
        completed = [s for s in families["temporal_workflow_completed"].samples if s.labels.get("task_queue") == queue]
        assert completed and completed[0].value >= 2, "the SDK's metrics are on the same endpoint"
        activities = [s for s in families["temporal_activity_execution_latency"].samples
                      if s.name.endswith("_count") and s.labels.get("activity_type") == "set_canary_weight"]
        assert activities and activities[0].value == 3, "three setWeight activities ran"

        async def scraped_the_end() -> bool:
            return value(prometheus, 'rollouts_finished_total{phase="Healthy",strategy="canary"}') is not None and \
                value(prometheus, f"rollout_step{running}") is None
        await eventually(scraped_the_end, timeout=30, what="the finished rollouts scraped")
        assert value(prometheus, 'sum(rollouts_started_total{strategy="canary",environment="test"})') == 2
        assert value(prometheus, 'rollouts_finished_total{phase="Degraded",reason="RolloutAborted"}') == 1
        assert value(prometheus, 'rollbacks_total{reason="RolloutAborted",strategy="canary"}') == 1
        assert value(prometheus, 'rollout_duration_seconds_count{phase="Healthy"}') == 1
        assert value(prometheus, 'rollout_approval_wait_seconds_count{outcome="promote"}') == 1
        assert value(prometheus, 'rollout_analysis_measurements_total{template="up",metric="scraped",'
                                 'phase="Successful"}') == 1
        assert value(prometheus, 'rollout_analysis_runs_total{phase="Successful"}') == 1

        # The dashboard: every query runs, and every metric it names is one Prometheus has scraped.
        scraped = set(httpx.get(f"{prometheus.url}/api/v1/label/__name__/values", timeout=10).json()["data"])
        queries = dashboard_queries()
        assert len(queries) >= 15
        for expr in queries:
            query(prometheus, expr)
            named = set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", expr))
            assert named and named <= scraped, f"{expr}: {named - scraped} not exported"
        environments = query(prometheus, "group by (environment) (rollouts_started_total)")  # label_values(...)
        assert {r["metric"]["environment"] for r in environments} == {"test"}
    finally:
        prometheus.stop()

    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(30) == 0, "SIGTERM drains the worker and exits 0"
    assert "draining" in worker.log.read_text()
