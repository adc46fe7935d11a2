"""The durability matrix: every strategy (canary, blue-green, rolling update, recreate, A/B test) ×
{worker SIGKILLed at every step boundary, worker SIGKILLed inside long activities, Temporal server
restarted mid-rollout, 20 % of Kubernetes API requests failing} and, for the strategies with an
analysis gate, Prometheus down during the analysis (23 cells).

Every cell runs a real rollout on the local cluster (with an analysis gate on the real Prometheus where
the strategy has one) and
asserts the final objects *and* the ordered effects from the kube-apiserver audit log: each weight,
size, selector switch or template change applied exactly once, in order. Each cell appends its record
to artifacts/durability/cells.jsonl; `python -m bench.durability` prints the figures.

All cells are marked `matrix`; the slowest also `slow` (`pytest -m "matrix and not slow"` for a quick
local subset). CI runs them all."""

from __future__ import annotations

import asyncio
import json

import pytest
from kubernetes import client
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from localcluster.behaviour import declare_images
from localcluster.devserver import DevServer, free_port
from localcluster.faultproxy import KUBERNETES_FAULTS, PROMETHEUS_FAULTS, FaultProxy
from localcluster.faults import ENV as KILL_PLAN
from localcluster.faults import read_journal
from models.status import RolloutStatus
from starters.commands import start_workflow
from tests.helpers import eventually, finished, read_audit
from tests.matrix import (
    ANALYSED,
    EFFECTS,
    LONG,
    STRATEGIES,
    Cell,
    Supervisor,
    check_effects,
    check_final,
    prepare_target,
    rollout,
)

pytestmark = pytest.mark.matrix


@pytest.fixture(scope="module")
def prometheus_proxy(prometheus):
    proxy = FaultProxy(prometheus.url, kinds=PROMETHEUS_FAULTS).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def cell_image(kube_api, unique):
    """The new version, whose pods take 2 s to become ready (so there is time inside long activities)."""
    image = f"registry.local/web:m-{unique}"
    declare_images(client.CoreV1Api(kube_api), {image: {"readyDelaySeconds": 2}})
    return image


@pytest.fixture
def record(request):
    """The cell's record, written after the test with its outcome."""
    cells: list[Cell] = []
    yield cells.append
    failed = getattr(request.node, "rep_call", None) is None or request.node.rep_call.failed
    for cell in cells:
        cell.write(passed=not failed)


def kill_plan(tmp_path, points: list[dict]) -> tuple[dict[str, str], object]:
    journal = tmp_path / "kills.jsonl"
    plan = tmp_path / "kill-plan.json"
    plan.write_text(json.dumps({"journal": str(journal), "points": points}))
    return {KILL_PLAN: str(plan)}, journal


async def run_killed(strategy, points, dev_server, dev_client, local_cluster, kube_api, workload, worker_processes,
                     prometheus_proxy, unique, tmp_path, cell_image, cell: Cell) -> list[dict]:
    env, journal = kill_plan(tmp_path, points)
    prepare_target(strategy, kube_api, workload)
    queue = f"matrix-{unique}"
    supervisor = Supervisor(worker_processes, dev_server.address, queue, env=env)
    try:
        spec = rollout(strategy, unique, workload, cell_image, prometheus_proxy.url)
        final: RolloutStatus = await finished(await start_workflow(dev_client, spec, queue, "test"), 300)
    finally:
        await supervisor.stop()
    kills = read_journal(journal)
    cell.figures.update(kills=len(kills), kill_points=sorted({f"{k['when']} {k['activity']}" for k in kills}),
                        restarts=supervisor.restarts)
    check_final(kube_api, workload, cell_image, final)
    check_effects(local_cluster.audit_log, strategy, workload, cell_image)
    return kills


@pytest.mark.slow
@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_worker_killed_at_every_step_boundary(strategy, dev_server, dev_client, local_cluster, kube_api,
                                                    workload, worker_processes, prometheus_proxy, unique, tmp_path,
                                                    cell_image, record):
    """SIGKILL after every cluster-changing activity's side effect, before its result reaches the
    server (and after the first measurement): each retry finds its work done and changes nothing."""
    cell = Cell(strategy, "worker kill at every step boundary")
    record(cell)
    points = [{"when": "after", "activities": EFFECTS[strategy]}, {"when": "after", "activities": ["measure"], "max": 1}]
    kills = await run_killed(strategy, points, dev_server, dev_client, local_cluster, kube_api, workload,
                             worker_processes, prometheus_proxy, unique, tmp_path, cell_image, cell)
    measured = {"measure"} if strategy in ANALYSED else set()
    assert {k["activity"] for k in kills} == set(EFFECTS[strategy]) | measured, kills
    assert len({k["activity_id"] for k in kills}) == len(kills), "each scheduled activity killed once"


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_worker_killed_inside_a_long_activity(strategy, dev_server, dev_client, local_cluster, kube_api,
                                                    workload, worker_processes, prometheus_proxy, unique, tmp_path,
                                                    cell_image, record):
    """SIGKILL one second into an activity that waits for pods to become ready: the retry resumes the wait
    (its progress deadline carried in the heartbeat) and applies nothing twice."""
    cell = Cell(strategy, "worker kill mid-activity")
    record(cell)
    points = [{"when": "during", "activities": LONG[strategy], "seconds": 1.0, "max": 2}]
    kills = await run_killed(strategy, points, dev_server, dev_client, local_cluster, kube_api, workload,
                             worker_processes, prometheus_proxy, unique, tmp_path, cell_image, cell)
    assert kills and all(k["when"] == "during" for k in kills), kills


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_server_restarted_mid_rollout(strategy, tmp_path, local_cluster, kube_api, workload, worker_processes,
                                            prometheus_proxy, unique, cell_image, record):
    """The Temporal server (SQLite file) stops while the first change is under way and starts 4 s later;
    the worker reconnects on its own and the rollout completes with every effect once."""
    cell = Cell(strategy, "server restart")
    record(cell)
    server = DevServer(db_file=tmp_path / "temporal.db", port=free_port(), ui_port=None,
                       log_file=tmp_path / "server.log").start()
    prepare_target(strategy, kube_api, workload)
    try:
        queue = f"matrix-restart-{unique}"
        worker_processes(server.address, queue)
        temporal = await Client.connect(server.address, data_converter=pydantic_data_converter)
        spec = rollout(strategy, unique, workload, cell_image, prometheus_proxy.url)
        await start_workflow(temporal, spec, queue, "test")
        first_write = "deployments"
        await eventually(lambda: read_audit(local_cluster.audit_log, workload, "web", first_write), timeout=60,
                         interval=0.05, what="the first change")
        server.stop()
        await asyncio.sleep(4)
        server.start()
        temporal = await Client.connect(server.address, data_converter=pydantic_data_converter)
        final = await finished(temporal.get_workflow_handle(spec.rollout_id), 240)
        cell.figures["downtime_seconds"] = 4
        check_final(kube_api, workload, cell_image, final)
        check_effects(local_cluster.audit_log, strategy, workload, cell_image)
    finally:
        server.stop()


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_kubernetes_api_faults(strategy, dev_server, dev_client, local_cluster, kube_api, workload,
                                     worker_processes, prometheus_proxy, unique, tmp_path, cell_image, record):
    """The engine's requests to the apps API (`/apis/`, watches aside) meet a fault through a proxy — the first
    of them (one that fails it) and every fifth after it, 20 %, counted rather than drawn so a cell's few
    requests always meet one: 500s, 409 conflicts, 429 with Retry-After, slow answers, dropped connections
    and answers lost after the write was applied. The rollout completes; every state change happens once (a
    write repeated after a lost answer changes nothing)."""
    cell = Cell(strategy, "20% Kubernetes API faults")
    record(cell)
    prepare_target(strategy, kube_api, workload)
    proxy = local_cluster.fault_proxy(every=5, kinds=KUBERNETES_FAULTS, seed=sum(map(ord, strategy)))
    try:
        kubeconfig = local_cluster.kubeconfig_through(proxy.url, tmp_path / "kubeconfig-faulty")
        queue = f"matrix-api-{unique}"
        worker_processes(dev_server.address, queue, kubeconfig=kubeconfig)
        spec = rollout(strategy, unique, workload, cell_image, prometheus_proxy.url)
        final = await finished(await start_workflow(dev_client, spec, queue, "test"), 300)
    finally:
        proxy.stop()
    kinds = {k: v for k, v in proxy.counts.items() if k != "passed"}
    cell.figures.update(fault_rate=proxy.rate, api_requests=proxy.eligible, faults=proxy.injected,
                        fault_kinds=dict(sorted(kinds.items())))
    assert set(kinds) - {"slow"}, f"a fault that fails a request was injected: {proxy.counts}"
    check_final(kube_api, workload, cell_image, final)
    check_effects(local_cluster.audit_log, strategy, workload, cell_image, fold_repeats=True)


@pytest.mark.parametrize("strategy", ANALYSED)
async def test_prometheus_outage_during_analysis(strategy, dev_client, cluster_worker, local_cluster, kube_api,
                                                 workload, prometheus_proxy, unique, cell_image, record):
    """Prometheus answers 503 for two measurements in the middle of the analysis: they are recorded as
    errors (below consecutiveErrorLimit), the analysis goes on once it is back, and the rollout completes."""
    cell = Cell(strategy, "Prometheus outage during analysis")
    record(cell)
    spec = rollout(strategy, unique, workload, cell_image, prometheus_proxy.url)
    handle = await start_workflow(dev_client, spec, cluster_worker, "test")

    async def measured(phase: str, n: int):
        status = await handle.query("status", result_type=RolloutStatus)
        done = [m for r in status.analysis for m in r.measurements if phase in ("*", m.phase)]
        return len(done) >= n

    await eventually(lambda: measured("*", 1), timeout=120, interval=0.1, what="the first measurement")
    with prometheus_proxy.faults(rate=1.0, kinds=["unavailable"]):
        await eventually(lambda: measured("Error", 2), timeout=60, interval=0.05, what="two failed measurements")
    final = await finished(handle, 180)
    errors = [m for r in final.analysis for m in r.measurements if m.phase == "Error"]
    cell.figures.update(measurement_errors=len(errors))
    assert 2 <= len(errors) <= 3 and all("Prometheus" in m.message for m in errors), errors
    check_final(kube_api, workload, cell_image, final)
    check_effects(local_cluster.audit_log, strategy, workload, cell_image)
