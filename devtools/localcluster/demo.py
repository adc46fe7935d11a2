"""`rollout demo`: everything local, started by the project — the real local Kubernetes, the Temporal
dev server with its Web UI, a worker — then the example canary, printed step by step. At the open
pause it prints the promote command and the Web UI link, and promotes by itself after a few
seconds unless `--interactive`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
from temporalio.client import WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.service import RPCError

from localcluster import REPO
from localcluster.commands import local_cluster, port_open
from localcluster.devserver import DevServer, state_dir, stop_process
from models.approvals import ApproveRequest, names_match
from models.names import DEFAULT_UI, TASK_QUEUE
from models.spec import Rollout, SpecError, load_rollout
from models.status import Phase, PromoteRequest, Reason, RolloutStatus
from starters.exitcodes import ExitCode, UserError

EXAMPLE = REPO / "examples" / "canary.yaml"
AUTO_PROMOTE_AFTER = 5.0
LONG_PAUSE = 60  # seconds: a timed pause longer than this is cut short by the demo


def run_demo(rollout: Rollout | None, interactive: bool, keep: bool, spec_file: Path | None = None) -> int:
    """The demo on `rollout` (read by the CLI from `spec_file`: `rollout demo -f`), or on the example canary."""
    if rollout is None:
        try:
            rollout = load_rollout(EXAMPLE)
        except SpecError as error:
            raise UserError("; ".join(error.problems)) from None
    target = rollout.spec.target.kubernetes
    stopping: list = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup below on SIGTERM too
    try:
        print("== 1/4 local Kubernetes (kube-apiserver + controller-manager v1.20.2, fake kubelet)", flush=True)
        cluster = local_cluster()
        if cluster.running():
            cluster.load()
        else:
            cluster.start()
            stopping.append(cluster.stop)
        print(f"   {cluster.server}  KUBECONFIG={cluster.kubeconfig}")

        print("== 2/4 Temporal dev server", flush=True)
        temporal_server(stopping)

        print("== 3/4 worker", flush=True)
        support = _stand_ins(rollout, cluster.simulator_url, stopping)
        stop_worker = start_worker({"KUBECONFIG": str(cluster.kubeconfig), **demo_groups(rollout), **support}, stopping)

        from kubernetes import config

        from localcluster.examples import prepare

        api = config.new_client_from_config(str(cluster.kubeconfig))
        try:
            prepared = prepare(api, rollout)
        finally:
            api.close()
        print(f"== 4/4 workload {target.namespace}/{target.deployment} on {prepared.stable_image}, 5 replicas"
              f" (traffic through {prepared.entry})", flush=True)

        print(f"\nrollout start -f {spec_file or 'examples/canary.yaml'} --wait", flush=True)
        code = asyncio.run(run_deciding(_start(rollout), rollout.rollout_id, interactive))
        _print_traffic(cluster.simulator_url, target.namespace, prepared.service, prepared.entry)
        if keep:  # leave the cluster and Temporal up for more rollouts; the worker still stops
            stopping = [stop_worker]
            print("\nkept running: `rollout worker` to run more rollouts; `rollout cluster down` to stop the cluster")
        return code
    finally:
        for stop in reversed(stopping):
            stop()


def temporal_server(stopping: list) -> None:
    """The dev server on localhost:7233 (an already running one is used), for the commands that follow."""
    if port_open(7233):
        print("   using the server already on localhost:7233")
    else:
        server = DevServer(db_file=state_dir() / "temporal.db", port=7233, ui_port=8233,
                           log_file=state_dir() / "temporal.log").start()
        stopping.append(server.stop)
        print(f"   {server.address}, Web UI {server.ui_url}")
    os.environ["TEMPORAL_ADDRESS"] = "localhost:7233"  # the demo is everything local
    os.environ["TEMPORAL_UI"] = DEFAULT_UI


def start_worker(env: dict[str, str], stopping: list):
    """`rollout worker` as a process with `env` added; returns what stops it."""
    log = open(state_dir() / "worker.log", "ab")
    worker = subprocess.Popen([sys.executable, "-m", "starters.cli", "worker"], env={**os.environ, **env},
                              stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    log.close()

    def stop_worker() -> None:
        stop_process(worker)

    stopping.append(stop_worker)
    print(f"   pid {worker.pid}, log {state_dir() / 'worker.log'}")
    return stop_worker


async def _start(rollout) -> int:
    from starters import commands

    queue = os.environ.get("ROLLOUT_TASK_QUEUE", TASK_QUEUE)
    return await commands.start(rollout, wait=False, timeout=0, task_queue=queue, as_json=False)


async def run_deciding(start, workflow_id: str, interactive: bool) -> int:
    """Run `start` (a coroutine that starts the workflow), then follow it, standing in for the people
    it waits for unless `interactive`."""
    from starters import commands

    client = await commands.connect()
    code = await start
    handle = client.get_workflow_handle(workflow_id)

    async def promoter() -> None:
        decided: set[tuple] = set()
        while True:
            await asyncio.sleep(1)
            try:
                s = await handle.query("status", result_type=RolloutStatus)
            except (RPCError, WorkflowQueryFailedError) as error:  # a busy machine's query can time out: ask again
                print(f"  (demo: the status query failed, asking again: {error})", file=sys.stderr, flush=True)
                continue
            if s.phase.finished:
                return
            waiting = _waiting_for(s)
            # one decision per wait: a step may pause more than once (a gradual shift holds at each weight)
            wait = (s.current_step, waiting, s.paused_until, s.approval.opened_at if s.approval else None)
            if interactive or not waiting or wait in decided:
                continue
            decided.add(wait)
            print(f"  (demo: {waiting} in {AUTO_PROMOTE_AFTER:.0f}s; --interactive waits for you)", flush=True)
            await asyncio.sleep(AUTO_PROMOTE_AFTER)
            for request, update in _decisions(s):
                try:
                    await handle.execute_update(update, request)
                except WorkflowUpdateFailedError:
                    pass  # someone decided (or aborted) it first, from the CLI or the Web UI
                except RPCError as error:  # not delivered (a busy machine): the next look decides again
                    print(f"  (demo: {update} not delivered, trying again: {error})", file=sys.stderr, flush=True)
                    decided.discard(wait)

    if code != ExitCode.OK:
        return code
    task = asyncio.create_task(promoter())
    try:
        return await commands.follow(handle, timeout=1800)
    finally:
        task.cancel()


def _waiting_for(s: RolloutStatus) -> str:
    """What the demo does for the person it stands in for: approve, promote an open pause, or cut a long
    timed pause short ("" when nothing; a short pause or an execution window is waited out)."""
    if s.phase is not Phase.PAUSED:
        return ""
    if s.approval is not None and not s.approval.decided:
        return "approving"
    if s.reason in (Reason.WAITING_FOR_PROMOTE.value, Reason.ANALYSIS_INCONCLUSIVE.value) or (
            s.reason in (Reason.TIMED_PAUSE.value, Reason.BAKING.value) and s.paused_until is not None
            and (s.paused_until - datetime.now(UTC)).total_seconds() > LONG_PAUSE):
        return "promoting"
    return ""


def _decisions(s: RolloutStatus) -> list[tuple[object, str]]:
    """The updates that move the rollout on: promote, or one approval per voter the policy needs."""
    a = s.approval
    if a is None or a.decided:
        return [(PromoteRequest(by="demo"), "promote")]
    voters = [v for v in (a.eligible or ["demo"]) if not (a.forbid_self_approval and names_match(v, a.initiator))]
    return [(ApproveRequest(by=v, comment="approved by the demo"), "approve") for v in voters[:a.min_approvals]]


def _stand_ins(rollout, simulator_url: str, stopping: list) -> dict[str, str]:
    """What the example needs besides the cluster, on loopback: a Prometheus scraping the simulator for
    its analysis; answers for the webhooks and notification channels it names. Returns the worker's
    environment for them."""
    from activities.settings import env_name

    env: dict[str, str] = {}
    spec = rollout.spec
    if spec.analysis_steps():
        from localcluster.prometheus import PrometheusServer

        target = simulator_url.removeprefix("http://").removesuffix("/metrics")
        prometheus = PrometheusServer(state_dir() / "prometheus", targets=[target]).start()
        stopping.append(prometheus.stop)
        env["PROMETHEUS_URL"] = prometheus.url
        print(f"   Prometheus {prometheus.url} scraping the simulator (for the analysis)")
    channels = [c.channel for c in spec.notifications if not os.environ.get(env_name("ROLLOUT_NOTIFY_", c.channel))]
    if spec.webhooks or channels:
        from localcluster.standins import StandIns

        standins = StandIns().start()
        stopping.append(standins.stop)
        env.update(standins.proxy_env())
        env.update({env_name("ROLLOUT_NOTIFY_", c): f"http://notifications.demo/{c}" for c in channels})
        hosts = sorted({h.url.split("/")[2] for h in spec.webhooks} | ({"notifications.demo"} if channels else set()))
        print(f"   stand-ins on {standins.url} answer {', '.join(hosts)} (the worker's HTTP proxy; nothing leaves "
              "this machine)")
    return env


def demo_groups(rollout) -> dict[str, str]:
    """Stand-in members for the approver groups the example names (two each), unless the environment
    defines them: the demo's worker resolves them like any group."""
    from activities.settings import env_name

    groups = sorted({g for _, policy in rollout.spec.approvals() for g in policy.groups})
    return {env_name("ROLLOUT_GROUP_", g): f"{g}-1,{g}-2" for g in groups
            if not os.environ.get(env_name("ROLLOUT_GROUP_", g))}


def _print_traffic(url: str, namespace: str, service: str, entry: str) -> None:
    """Requests per version the simulator saw through the example's entry during the demo."""
    from localcluster.traffic import requests_by_version

    try:
        totals = requests_by_version(url, namespace, service if entry.startswith("service/") else "", entry)
    except httpx.HTTPError:
        return
    if totals:
        counts = ", ".join(f"{version}: {int(n)}" for version, n in sorted(totals.items()))
        print(f"\nsimulated requests through {entry}: {counts}")
