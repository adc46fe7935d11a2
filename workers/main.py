"""`rollout worker`: runs the rollout workflows and the activities that touch clusters.

Pydantic data converter; a thread pool for the synchronous Kubernetes client; Temporal SDK metrics on
a Prometheus endpoint; SIGTERM/SIGINT drain the worker (running activities get the graceful timeout).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import signal
from datetime import timedelta

from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

from activities.analysis import AnalysisActivities
from activities.approvers import ApproverActivities
from activities.bluegreen import BlueGreenActivities
from activities.canary import CanaryActivities
from activities.deployment import DeploymentActivities
from activities.kube import KubeClients
from activities.notify import NotifyActivities
from activities.webhooks import WebhookActivities
from activities.window import WindowActivities
from models import names
from workers.codec import data_converter
from workflows.registry import ALL_WORKFLOWS

WORKFLOWS = ALL_WORKFLOWS
log = logging.getLogger("rollout.worker")


def kill_points() -> list:
    """Fault-injection kill points, only when a test sets $DURABLE_ROLLOUTS_KILL_PLAN (localcluster/faults.py)."""
    if not os.environ.get("DURABLE_ROLLOUTS_KILL_PLAN"):
        return []
    from localcluster.faults import from_env

    return from_env()


def activities_for(clients: KubeClients) -> list:
    canary, deployment, blue_green = CanaryActivities(clients), DeploymentActivities(clients), BlueGreenActivities(clients)
    window = WindowActivities(clients)
    return [
        AnalysisActivities().measure,
        ApproverActivities().resolve_groups,
        NotifyActivities().notify,
        WebhookActivities().call_webhook,
        window.keep_warm,
        window.switch_to_warm,
        window.close_window,
        blue_green.prepare_blue_green,
        blue_green.scale_preview,
        blue_green.shift_traffic,
        blue_green.switch_active,
        blue_green.complete_blue_green,
        blue_green.abort_blue_green,
        canary.prepare_canary,
        canary.set_canary_weight,
        canary.promote_canary,
        canary.abort_canary,
        deployment.roll_out_deployment,
        deployment.undo_deployment,
    ]


async def connect(address: str, namespace: str, metrics_port: int | None = None) -> Client:
    runtime = None
    if metrics_port is not None:
        runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"127.0.0.1:{metrics_port}")))
    return await Client.connect(
        address, namespace=namespace, data_converter=data_converter(), runtime=runtime
    )


async def run_worker(
    address: str, namespace: str, task_queue: str, metrics_port: int | None, kubeconfig: str | None = None
) -> None:
    client = await connect(address, namespace, metrics_port)
    clients = KubeClients(kubeconfig)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        worker = Worker(
            client,
            task_queue=task_queue,
            workflows=WORKFLOWS,
            activities=activities_for(clients),
            activity_executor=pool,
            interceptors=kill_points(),
            graceful_shutdown_timeout=timedelta(seconds=10),
        )
        log.info("worker on %s (namespace %s, task queue %s)", address, namespace, task_queue)
        print(f"worker ready: {address} namespace={namespace} task-queue={task_queue}", flush=True)
        async with worker:
            await stop.wait()
            log.info("draining")
    clients.close()


def main(task_queue: str | None = None, metrics_port: int | None = None, kubeconfig: str | None = None) -> None:
    logging.basicConfig(level=os.environ.get("ROLLOUT_LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s")
    asyncio.run(
        run_worker(
            os.environ.get("TEMPORAL_ADDRESS", names.DEFAULT_ADDRESS),
            os.environ.get("TEMPORAL_NAMESPACE", names.DEFAULT_NAMESPACE),
            task_queue or os.environ.get("ROLLOUT_TASK_QUEUE", names.TASK_QUEUE),
            metrics_port,
            kubeconfig,
        )
    )
