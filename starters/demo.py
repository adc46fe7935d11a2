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
from pathlib import Path

import httpx
from temporalio.client import WorkflowUpdateFailedError

from models.names import DEFAULT_UI, TASK_QUEUE
from models.spec import SpecError, load_rollout
from models.status import Phase, PromoteRequest, RolloutStatus
from starters.devserver import DevServer, state_dir, stop_process
from starters.exitcodes import ExitCode, UserError
from starters.local import local_cluster, port_open

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "canary.yaml"
AUTO_PROMOTE_AFTER = 5.0


def run_demo(spec_file: Path | None, interactive: bool, keep: bool) -> int:
    try:
        rollout = load_rollout(spec_file or EXAMPLE)
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
        if port_open(7233):
            print("   using the server already on localhost:7233")
        else:
            server = DevServer(db_file=state_dir() / "temporal.db", port=7233, ui_port=8233,
                               log_file=state_dir() / "temporal.log").start()
            stopping.append(server.stop)
            print(f"   {server.address}, Web UI {server.ui_url}")
        os.environ["TEMPORAL_ADDRESS"] = "localhost:7233"  # the demo is everything local
        os.environ["TEMPORAL_UI"] = DEFAULT_UI

        print("== 3/4 worker", flush=True)
        log = open(state_dir() / "worker.log", "ab")
        worker = subprocess.Popen(
            [sys.executable, "-m", "starters.cli", "worker"],
            env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
            stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parent.parent,
        )
        log.close()
        def stop_worker() -> None:
            stop_process(worker)

        stopping.append(stop_worker)
        print(f"   pid {worker.pid}, log {state_dir() / 'worker.log'}")

        from kubernetes import config

        from localcluster.workload import deploy

        stable_image = rollout.spec.image.rsplit(":", 1)[0] + ":1.4.1"
        print(f"== 4/4 workload {target.namespace}/{target.deployment} on {stable_image}, 5 replicas", flush=True)
        api = config.new_client_from_config(str(cluster.kubeconfig))
        deploy(api, target.namespace, target.deployment, stable_image, replicas=5)
        api.close()

        print(f"\nrollout start -f {spec_file or 'examples/canary.yaml'} --wait", flush=True)
        code = asyncio.run(_run(rollout, interactive))
        _print_traffic(cluster.simulator_url, target.namespace, target.deployment)
        if keep:  # leave the cluster and Temporal up for more rollouts; the worker still stops
            stopping = [stop_worker]
            print("\nkept running: `rollout worker` to run more rollouts; `rollout cluster down` to stop the cluster")
        return code
    finally:
        for stop in reversed(stopping):
            stop()


async def _run(rollout, interactive: bool) -> int:
    from starters import commands

    client = await commands.connect()
    queue = os.environ.get("ROLLOUT_TASK_QUEUE", TASK_QUEUE)
    code = await commands.start(rollout, wait=False, timeout=0, task_queue=queue, as_json=False)
    handle = client.get_workflow_handle(rollout.rollout_id)

    async def promoter() -> None:
        promoted_at: set[int] = set()
        while True:
            await asyncio.sleep(1)
            s = await handle.query("status", result_type=RolloutStatus)
            if s.phase is Phase.PAUSED and s.paused_until is None and s.current_step not in promoted_at:
                if interactive:
                    continue
                print(f"  (demo: promoting in {AUTO_PROMOTE_AFTER:.0f}s; --interactive waits for you)", flush=True)
                await asyncio.sleep(AUTO_PROMOTE_AFTER)
                try:
                    await handle.execute_update("promote", PromoteRequest(by="demo"))
                except WorkflowUpdateFailedError:
                    pass  # someone promoted (or aborted) it first, from the CLI or the Web UI
                promoted_at.add(s.current_step)
            if s.phase.finished:
                return

    if code != ExitCode.OK:
        return code
    task = asyncio.create_task(promoter())
    try:
        return await commands.follow(handle, timeout=1800)
    finally:
        task.cancel()


def _print_traffic(url: str, namespace: str, service: str) -> None:
    """Requests per version the simulator saw through the Service during the demo."""
    from localcluster.traffic import requests_by_version

    try:
        totals = requests_by_version(url, namespace, service)
    except httpx.HTTPError:
        return
    if totals:
        counts = ", ".join(f"{version}: {int(n)}" for version, n in sorted(totals.items()))
        print(f"\nsimulated requests through service {service}: {counts}")
