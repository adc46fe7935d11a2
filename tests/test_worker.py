"""`rollout worker` as an operator runs it: Temporal SDK metrics on a Prometheus endpoint, and a
clean drain on SIGTERM."""

from __future__ import annotations

import signal

import httpx
from prometheus_client.parser import text_string_to_metric_families

from localcluster.devserver import free_port
from starters.commands import start_workflow
from tests.helpers import canary_rollout, finished


async def test_worker_serves_sdk_metrics_and_drains_on_sigterm(
    dev_server, dev_client, workload, worker_processes, unique
):
    port = free_port()
    queue = f"metrics-{unique}"
    worker = worker_processes(dev_server.address, queue, "--metrics-port", str(port))
    rollout = canary_rollout(name=f"web-{unique}", namespace=workload, deployment="web",
                             image="registry.local/web:4.0.0", steps=[{"setWeight": 50}, {"setWeight": 100}])
    final = await finished(await start_workflow(dev_client, rollout, queue, "test"), 90)
    assert final.phase.value == "Healthy"

    families = {f.name: f for f in text_string_to_metric_families(httpx.get(f"http://127.0.0.1:{port}/metrics").text)}
    completed = [s for s in families["temporal_workflow_completed"].samples if s.labels.get("task_queue") == queue]
    assert completed and completed[0].value >= 1, "the worker counted the completed rollout"
    activities = [s for s in families["temporal_activity_execution_latency"].samples
                  if s.name.endswith("_count") and s.labels.get("activity_type") == "set_canary_weight"]
    assert activities and activities[0].value == 2, "two setWeight activities ran"

    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(30) == 0, "SIGTERM drains the worker and exits 0"
    assert "draining" in worker.log.read_text()
