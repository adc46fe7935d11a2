"""`rollout worker`: runs the rollout workflows and the activities that touch clusters.

Pydantic data converter; a thread pool for the synchronous Kubernetes client; the deployment metrics
and the Temporal SDK's on one Prometheus endpoint (`--metrics-port`, on `$ROLLOUT_METRICS_ADDRESS`,
default loopback; workers/metrics.py); SIGTERM/SIGINT drain the worker (running activities get the
graceful timeout).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Sequence
from datetime import timedelta

import httpx
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Interceptor, Worker

from activities.analysis import AnalysisActivities, MetricProvider, default_providers
from activities.analysis.kubernetes import ClusterHealthSource
from activities.approvers import ApproverActivities
from activities.identity import IdentityActivities
from activities.notify import NotifyActivities
from activities.registry import RegistryActivities
from activities.sealing import private_keys, public_key
from activities.targets.appstore import AppStoreActivities
from activities.targets.flag import FlagActivities
from activities.targets.flag.configmap import ConfigMapBackend
from activities.targets.flag.store import FlagdStore
from activities.targets.intune import IntuneActivities
from activities.targets.kubernetes.client import KubeClients
from activities.targets.mdm import MdmActivities
from activities.targets.msstore import MicrosoftStoreActivities
from activities.targets.play import PlayActivities
from activities.targets.updater import UpdaterActivities
from activities.targets.updater.client import S3Clients
from activities.webhooks import WebhookActivities
from models import names
from models.targets import Target, resolve
from workers import temporal
from workers.heartbeat import heartbeat_options
from workers.metrics import MetricsServer
from workers.options import DEFAULTS, WorkerOptions, from_arguments
from workers.temporal import TemporalSettings
from workflows.registry import ALL_WORKFLOWS

WORKFLOWS = ALL_WORKFLOWS
log = logging.getLogger("rollout.worker")


def activities_for(clients: KubeClients | None, providers: dict[str, MetricProvider] | None = None,
                   families: Sequence[str] = names.FAMILIES) -> list:
    """The activities of the target `families` and those every family's workflows call, in one list."""
    return [fn for group in activities_by_family(clients, providers, families).values() for fn in group]


def activities_by_family(clients: KubeClients | None, providers: dict[str, MetricProvider] | None = None,
                         families: Sequence[str] = names.FAMILIES) -> dict[str, list]:
    """`common` (analysis, approvers, identity, notifications, webhooks: what every family's workflows
    call) and each of the target `families`' activities, bound to the clients they receive (built once
    per worker). `clients`: the Kubernetes clients (lazy: a context is loaded on first use)."""
    clients = clients if clients is not None else KubeClients(None)
    http = httpx.Client()  # webhooks, notifications, the registry, OIDC keys; each call sets its own timeout
    measured = {**(default_providers() if providers is None else providers)}
    if "kubernetes" in families:
        measured["kubernetes"] = ClusterHealthSource(clients)
    identity = IdentityActivities(http)
    found = {"common": [
        AnalysisActivities(measured).measure,
        ApproverActivities().resolve_groups,
        identity.fetch_signing_keys,
        identity.verify_vote,  # a local activity (a signal's vote)
        NotifyActivities(http).notify,
        WebhookActivities(http).call_webhook,
    ]}
    for model in Target.models().values():  # each delivery target's activities, on its family's queue
        if model.FAMILY in families:
            found.setdefault(model.FAMILY, []).extend(resolve(model.ACTIVITIES)(clients, http))
    if "kubernetes" in families:  # the pipelines' family: a bundle's tags pinned to digests
        found["kubernetes"].append(RegistryActivities(http).resolve_bundle)
    if "updater" in families:
        s3 = S3Clients()
        updater = UpdaterActivities(s3)
        flags = FlagActivities(s3, http, extra_stores={"configMap": FlagdStore(ConfigMapBackend(clients))})
        found["updater"] = [updater.upload_artifact, updater.publish_release, updater.read_channel,
                            updater.refresh_timestamp, flags.set_flag_share, flags.read_flag_share]
    if "stores" in families:
        found["stores"] = _stores()
    return found


def _stores() -> list:
    play, apple, msstore = PlayActivities(), AppStoreActivities(), MicrosoftStoreActivities()
    intune, mdm = IntuneActivities(), MdmActivities()
    return [
        mdm.deploy, mdm.set_groups, intune.read_assignments, intune.assign,
        msstore.create_submission, msstore.read_submission, msstore.set_rollout,
        apple.prepare_version, apple.submit_for_review, apple.read_version, apple.release_version,
        apple.set_phased_release,
        play.upload_bundle, play.set_track, play.read_track,
    ]


async def run_worker(settings: TemporalSettings, task_queue: str, metrics_port: int | None,
                     kubeconfig: str | None = None, interceptors: Sequence[Interceptor] = (),
                     options: WorkerOptions = DEFAULTS) -> None:
    """One Temporal worker per target family's task queue, sharing the client, the thread pool and the
    Kubernetes clients."""
    runtime, metrics_server = None, None
    if metrics_port is not None:  # the SDK's exporter on a loopback port of its own, served after ours
        sdk = f"127.0.0.1:{_free_loopback_port()}"
        runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=sdk)))
        address = os.environ.get("ROLLOUT_METRICS_ADDRESS", "127.0.0.1")
        metrics_server = MetricsServer(address, metrics_port, f"http://{sdk}/metrics")
    client = await temporal.connect(settings, runtime)
    clients = KubeClients(kubeconfig)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with concurrent.futures.ThreadPoolExecutor(max_workers=options.activity_threads) as pool:
        queues = {family: names.task_queue_for(task_queue, family) for family in options.targets}
        bound = activities_by_family(clients, default_providers(), options.targets)  # built once, shared
        workers = [Worker(
            client,
            task_queue=queue,
            workflows=WORKFLOWS,
            # The base queue also serves the other families this worker has: releases started there before
            # the families had queues of their own (or by a caller that names the queue) still run.
            activities=[fn for group, fns in bound.items() for fn in fns
                        if group in ("common", family) or family == "kubernetes"],
            activity_executor=pool,
            **heartbeat_options(interceptors),
            max_cached_workflows=options.max_cached_workflows,
            max_concurrent_workflow_tasks=options.max_concurrent_workflow_tasks,
            max_concurrent_activities=options.max_concurrent_activities,
            sticky_queue_schedule_to_start_timeout=timedelta(seconds=options.sticky_timeout),
            graceful_shutdown_timeout=timedelta(seconds=options.graceful_shutdown),
        ) for family, queue in queues.items()]
        shown = " ".join(f"{family}={queue}" for family, queue in queues.items())
        log.info("worker on %s (namespace %s, task queues %s)", settings.address, settings.namespace, shown)
        async with contextlib.AsyncExitStack() as running:
            for worker in workers:
                await running.enter_async_context(worker)
            if metrics_server is not None:  # open once the workers poll: a pod's readiness probe asks it
                metrics_server.start()
            print(f"worker ready: {settings.address} namespace={settings.namespace} task-queue={task_queue} "
                  f"families: {shown}", flush=True)
            sealing = public_key(private_keys())
            if sealing:  # what the CLI seals a start's ID token to (starters/identity.starter_token)
                print(f"ID tokens sealed to {sealing} (give starters DURABLE_ROLLOUTS_TOKEN_PUBLIC_KEY={sealing})",
                      flush=True)
            await stop.wait()
            log.info("draining")
    clients.close()
    if metrics_server is not None and metrics_server.started:
        metrics_server.stop()


def _free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main(task_queue: str | None = None, metrics_port: int | None = None, kubeconfig: str | None = None,
         interceptors: Sequence[Interceptor] = (), options: WorkerOptions | None = None) -> None:
    """`interceptors`: what the caller adds around activities (the test harness' kill points)."""
    logging.basicConfig(level=os.environ.get("ROLLOUT_LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s")
    asyncio.run(run_worker(TemporalSettings.from_env(), task_queue or os.environ.get("ROLLOUT_TASK_QUEUE", names.TASK_QUEUE),
                           metrics_port, kubeconfig, interceptors, options or from_arguments()))
