"""Shared fixtures: the Temporal environments (time-skipping test server, CLI dev server) and the
real local Kubernetes cluster. Each test uses its own task queue, rollout name and namespace."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from localcluster.devserver import DevServer, binary, free_port, stop_process
from workers.temporal import ensure_search_attributes

REPO = Path(__file__).resolve().parent.parent


# ---- parallel runs (pytest-xdist, scripts/test; the units and their order: tests/scheduling.py) ------


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist's: without it (`-p no:xdist`), not called
def pytest_xdist_make_scheduler(config, log):
    """`-n N` (xdist's `--dist load`, or `loadscope`): whole modules to a worker, longest first."""
    if config.getvalue("dist") in ("load", "loadscope"):
        from tests.scheduling import module_scheduling

        return module_scheduling(config, log)
    return None


def uses_cluster_fleet(item) -> bool:
    """Whether the test uses this file's `fleet` (three clusters), not the release tests' simulated one."""
    definitions = item._fixtureinfo.name2fixturedefs.get("fleet") or ()
    return bool(definitions) and definitions[-1].func.__module__ == __name__  # the last one is the one used


def pytest_sessionstart(session):
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # the controller, or a serial run: the run's timeline
        from tests import timeline

        timeline.start()


def pytest_runtest_logreport(report):
    """Each phase's start and stop, on which worker (tests/timeline.py: which unit the run waited for)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        from tests import timeline

        timeline.record(report)


def pytest_collection_modifyitems(config, items):
    """On an xdist worker (workers collect, each orders alike, as xdist requires): the longest units first.
    Serially and on a worker, the tests of the three clusters run one after another: the fleet stops after
    the last of a run of them (pytest_runtest_teardown), so a test of their modules that does not use it
    must not come between two that do (`pytest tests/test_pipeline_clusters.py tests/test_pipeline_ci.py`
    put test_pipeline_ci's parse test between them, and its delivery test met stopped clusters)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        from tests.scheduling import rank

        items.sort(key=lambda item: rank(item.nodeid))
    fleet = [item for item in items if uses_cluster_fleet(item)]
    if fleet:
        first, rest = items.index(fleet[0]), [item for item in items if not uses_cluster_fleet(item)]
        items[:] = rest[:first] + fleet + rest[first:]


def pytest_runtest_setup(item):
    """A test that uses the three clusters outside the fleet unit's modules fails naming the fix (before
    its fixtures start a second fleet), serially and on an xdist worker alike."""
    from tests.scheduling import CLUSTER_FLEET

    if uses_cluster_fleet(item) and item.path.name not in CLUSTER_FLEET:
        pytest.fail(f"{item.nodeid} uses the three clusters: add its module to CLUSTER_FLEET in tests/scheduling.py",
                    pytrace=False)
    if uses_cluster_fleet(item) and _FLEET_STOPPED:  # --ff, or xdist handing on a crashed worker's tests
        pytest.fail(f"{item.nodeid} runs after the three clusters were stopped (their tests run one after another: "
                    "pytest_collection_modifyitems; an order given after it broke that)", pytrace=False)


@pytest.fixture(scope="module")
async def time_skipping_env():
    """A time-skipping test server for each module: its clock skips only while nothing is in flight, so a
    workflow another module left open (an activity whose worker has gone) would hold it for every test
    after; with a server of its own, a module's outcome does not depend on what ran before it on the same
    xdist worker (in a parallel run, three Intune tests waited out their 300 s limit on a shared server
    whose clock had stopped skipping)."""
    async with _time_skipping() as env:
        yield env


@pytest.fixture
async def own_time_skipping_env():
    """A time-skipping server for one test: one that aborts a release while an activity runs (the test
    server's clock then stops skipping for every later test on it, though the workflow has ended)."""
    async with _time_skipping() as env:
        yield env


@contextlib.asynccontextmanager
async def _time_skipping():
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=binary("temporal-test-server")
    )
    await ensure_search_attributes(env.client, "default")
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
def dev_server(tmp_path_factory) -> DevServer:
    """A dev server of our own (SQLite file, search attributes registered), shared by the session."""
    root = tmp_path_factory.mktemp("temporal")
    server = DevServer(db_file=root / "temporal.db", port=free_port(), ui_port=free_port(), log_file=root / "server.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def dev_client(dev_server):
    """A client as the CLI and the worker make it (workers/temporal.py), on the test's dev server."""
    from workers.temporal import TemporalSettings, connect

    return await connect(TemporalSettings(address=dev_server.address, namespace="default", ui=dev_server.ui_url))


@pytest.fixture
def unique() -> str:
    """A short unique suffix for task queues, rollout names and namespaces."""
    return uuid.uuid4().hex[:8]


# ---- the real local Kubernetes ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory):
    from localcluster.cluster import LocalCluster

    cluster = LocalCluster(root=tmp_path_factory.mktemp("cluster"), ready_delay_seconds=0.3)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def kube_api(local_cluster):
    from kubernetes import config

    api = config.new_client_from_config(str(local_cluster.kubeconfig))
    yield api
    api.close()


@pytest.fixture
def workload(kube_api, unique):
    """A namespace with Deployment `web` (registry.local/web:1.0.0, 4 replicas) and Service `web`,
    deleted after the test (not waited for): the traffic simulator sends each Service left behind its
    requests on every tick, and a suite's worth of them made ticks late and the whole machine slower."""
    from kubernetes import client

    from localcluster.workload import deploy

    namespace = f"t-{unique}"
    deploy(kube_api, namespace, "web", "registry.local/web:1.0.0", replicas=4, rps=200)
    yield namespace
    try:
        client.CoreV1Api(kube_api).delete_namespace(namespace, propagation_policy="Background")
    except client.ApiException as error:
        if error.status != 404:
            raise


@contextlib.asynccontextmanager
async def in_process_worker(client, queue: str, kubeconfig: Path, threads: int = 16):
    """A worker with every workflow and the real activities, their clusters from `kubeconfig`."""
    import concurrent.futures

    from temporalio.worker import Worker

    from activities.targets.kubernetes.client import KubeClients
    from workers.heartbeat import heartbeat_options
    from workers.main import WORKFLOWS, activities_for

    clients = KubeClients(str(kubeconfig))
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
            async with Worker(client, task_queue=queue, workflows=WORKFLOWS, activities=activities_for(clients),
                              activity_executor=pool, **heartbeat_options()):
                yield queue
    finally:
        clients.close()


@pytest.fixture
async def cluster_worker(dev_client, local_cluster, unique):
    """An in-process worker with the real Kubernetes activities, on this test's own task queue."""
    async with in_process_worker(dev_client, f"rollouts-{unique}", local_cluster.kubeconfig) as queue:
        yield queue


class WorkerProcess:
    """`rollout worker` as its own process, so a test can SIGKILL it like a crashed machine."""

    def __init__(self, address: str, task_queue: str, kubeconfig: Path, log: Path, extra: tuple[str, ...] = (),
                 env: dict[str, str] | None = None):
        self.address, self.task_queue, self.kubeconfig, self.log = address, task_queue, kubeconfig, log
        self.extra, self.env = extra, env or {}
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> WorkerProcess:
        env = {**os.environ, "TEMPORAL_ADDRESS": self.address, "KUBECONFIG": str(self.kubeconfig), **self.env}
        with open(self.log, "ab") as log:
            offset = log.tell()
            # With a kill plan: the harness' worker entry, which hands the kill points to the product's worker.
            command = ["localcluster.worker"] if "DURABLE_ROLLOUTS_KILL_PLAN" in self.env else ["starters.cli", "worker"]
            self.process = subprocess.Popen(
                [sys.executable, "-m", *command, "--task-queue", self.task_queue, *self.extra],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while b"worker ready" not in self.log.read_bytes()[offset:]:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)
        return self

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def kill(self) -> None:
        """SIGKILL: no drain, no goodbye to the server."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        stop_process(self.process, grace=30)


def _spawner(log: Path, default_kubeconfig: Path):
    started: list[WorkerProcess] = []

    def spawn(address: str, task_queue: str, *extra: str, kubeconfig: Path | None = None,
              env: dict[str, str] | None = None) -> WorkerProcess:
        worker = WorkerProcess(address, task_queue, kubeconfig or default_kubeconfig, log, extra, env).start()
        started.append(worker)
        return worker

    return spawn, started


@pytest.fixture
def worker_processes(tmp_path, local_cluster):
    """Factory: start `rollout worker` processes against a server address; all are stopped at the end.
    `kubeconfig` (e.g. through a fault proxy) and `env` (e.g. a kill plan) are optional."""
    spawn, started = _spawner(tmp_path / "worker.log", local_cluster.kubeconfig)
    yield spawn
    for worker in started:
        worker.stop()


@pytest.fixture
def release_worker_processes(tmp_path):
    """The same, for releases: no cluster (the worker builds Kubernetes clients only when asked)."""
    spawn, started = _spawner(tmp_path / "worker.log", tmp_path / "no-kubeconfig")
    yield spawn
    for worker in started:
        worker.stop()


@pytest.fixture(scope="session", autouse=True)
def worker_allowlists(tmp_path_factory):
    """What the worker's configuration allows, for every worker the tests start: artifacts and flags files
    under this xdist worker's temporary directory (a worker process that holds keys gets an artifact root
    of its own: activities/artifacts.py), S3 and Unleash on loopback (activities/targets/flag/allowed.py).
    The tests of the allowlists themselves set narrower ones."""
    base = tmp_path_factory.getbasetemp()
    (base / "config").mkdir(exist_ok=True)
    stores = base / "config" / "flag-stores.yaml"  # a directory of its own: artifacts are refused next to it
    stores.write_text(f"files: [{json.dumps(str(base))}]\ns3Endpoints: [http://127.0.0.1]\nunleash: [http://127.0.0.1]\n"
                      "s3Buckets: [flags, flags-*]\n")
    allowed = {"DURABLE_ROLLOUTS_ARTIFACT_ROOTS": str(base), "DURABLE_ROLLOUTS_FLAG_STORES": str(stores),
               "DURABLE_ROLLOUTS_STATE_DIR": str(base / "worker-state")}  # what workers have seen of repositories
    os.environ.update(allowed)
    yield
    for name in allowed:
        os.environ.pop(name, None)


@pytest.fixture(scope="session")
def prometheus(local_cluster, tmp_path_factory):
    """Real Prometheus (Debian package) scraping the local cluster's traffic simulator every second."""
    from localcluster.prometheus import PrometheusServer

    target = local_cluster.simulator_url.removeprefix("http://").removesuffix("/metrics")
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"), targets=[target]).start()
    os.environ["PROMETHEUS_URL"] = server.url  # for workers started from here on (the providers' default)
    yield server
    os.environ.pop("PROMETHEUS_URL", None)
    server.stop()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item (`item.rep_call`), for fixtures that record outcomes."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


# ---- S3 (moto) and updater repositories --------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server on loopback, shared by the session (each test makes its own bucket/prefix)."""
    from localcluster.updates import S3Server

    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    server = S3Server().start()
    yield server
    server.stop()


@pytest.fixture
def updater_setup(s3_server, tmp_path, unique):
    """A new TUF repository (keys, root, four channels) in its own prefix of bucket `updates`."""
    from localcluster.updates import new_repository

    return new_repository(s3_server, "updates", f"app-{unique}", tmp_path / "publisher")


# ---- several clusters and a registry (pipelines) ----------------------------------------------------


@pytest.fixture(scope="session")
def fleet(local_cluster, tmp_path_factory):
    """Three independent clusters, contexts local-1 (the session's cluster) … local-3 in one kubeconfig."""
    from localcluster.clusters import LocalClusters

    clusters = LocalClusters.of(tmp_path_factory.mktemp("fleet"), [local_cluster], more=2, ready_delay_seconds=0.3)
    _FLEETS.append(clusters.start())
    yield clusters
    clusters.stop()


_FLEETS: list = []
_FLEET_STOPPED: list = []  # the fleet this process stopped: a fleet test after it fails saying so


@pytest.hookimpl(trylast=True)  # after the test's own teardown (its workers on the clusters stop first)
def pytest_runtest_teardown(item, nextitem):
    """The two extra clusters stop after the last test that uses them (the pipeline tests run together),
    so they add no load to the tests after them."""
    if _FLEETS and uses_cluster_fleet(item) and (nextitem is None or not uses_cluster_fleet(nextitem)):
        _FLEETS[-1].stop()
        _FLEET_STOPPED.append(_FLEETS.pop())


@pytest.fixture(scope="session")
def fleet_apis(fleet):
    from kubernetes import config

    apis = [config.new_client_from_config(str(c.kubeconfig)) for c in fleet.clusters]
    yield apis
    for api in apis:
        api.close()


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """Debian's docker-registry on loopback (plain HTTP: listed as an insecure registry for the workers)."""
    from localcluster.registry import LocalRegistry

    server = LocalRegistry(tmp_path_factory.mktemp("registry")).start()
    os.environ["DURABLE_ROLLOUTS_INSECURE_REGISTRIES"] = server.host
    yield server
    os.environ.pop("DURABLE_ROLLOUTS_INSECURE_REGISTRIES", None)
    server.stop()


@pytest.fixture
async def fleet_worker(dev_client, fleet, registry, unique):
    """An in-process worker whose kubeconfig has the three clusters, on this test's own task queue."""
    async with in_process_worker(dev_client, f"fleet-{unique}", fleet.kubeconfig, threads=24) as queue:
        yield queue
