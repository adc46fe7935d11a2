"""The worker's image: `deploy/Dockerfile` built on a real Docker engine (the base made from Debian packages,
every dependency from the suite's wheelhouse: nothing pulled) and run **from the image** against the tests'
Temporal and local kube-apiserver — both outside the engine's network namespace, exposed inside it on
loopback (localcluster/dockerhost.py `expose`) — until a canary it carries out completes. The image runs as
a non-root user and holds neither the dev tools nor the tests' tooling."""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from localcluster.workerimage import build_worker_image

WHEELHOUSE = Path(os.environ.get("DURABLE_ROLLOUTS_CACHE", Path.home() / ".cache" / "durable-rollouts")) / "wheelhouse"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # the build: 128 s idle, 225 s in run 57


@pytest.fixture(scope="module")
def worker_image(docker_host):
    built = build_worker_image(docker_host, WHEELHOUSE)
    print(f"worker image: built in {built.seconds:.0f} s, {built.size / 1e6:.0f} MB")
    return built


def test_the_image_runs_as_a_non_root_user_without_the_dev_tools(worker_image, docker_host):
    client = docker_host.client()
    try:
        image = client.images.get(worker_image.image)
        assert image.attrs["Config"]["User"] == "10001"
        assert image.attrs["Config"]["Entrypoint"] == ["rollout"]
        run = client.containers.run
        assert run(worker_image.image, [], entrypoint=["id", "-u"], remove=True).strip() == b"10001"
        listed = "import importlib.metadata as m, json; print(json.dumps([d.metadata['Name'] for d in m.distributions()]))"
        names = {name.lower() for name in json.loads(run(worker_image.image, ["-c", listed], entrypoint=["python"],
                                                         remove=True))}
        assert {"durable-rollouts", "rollout-agent", "temporalio", "kubernetes"} <= names
        assert not names & {"pytest", "moto", "playwright", "ruff", "durable-rollouts-devtools", "hypothesis", "pip",
                            "setuptools"}, names
        # nothing of the repository but what the Dockerfile installs: no sources, no tests
        listing = run(worker_image.image, ["-c", "ls /opt; ls /opt/venv/lib/python3.11/site-packages"],
                      entrypoint=["sh"], remove=True).decode().split()
        assert "durable-rollouts" not in listing and not {"tests", "localcluster", "devtools"} & set(listing)
        refused = run(worker_image.image, ["demo"], detach=True)  # the dev tools' command: not in the image
        assert refused.wait(timeout=60)["StatusCode"] == 2, refused.logs()
        assert b"Traceback" not in refused.logs()
        refused.remove()
    finally:
        client.close()


async def test_a_worker_from_the_image_carries_out_a_canary(worker_image, docker_host, dev_server, local_cluster,
                                                            dev_client, workload, unique, tmp_path):
    """The worker in the container reaches Temporal and the apiserver at the addresses it would be given on a
    real host; the canary's Deployment changes in the local cluster, driven from the image alone."""
    from kubernetes import client as kube
    from kubernetes import config as kube_config

    from models.status import Phase, RolloutStatus
    from starters.commands import start_workflow
    from tests.helpers import canary_rollout

    kubeconfig = json.loads(local_cluster.kubeconfig.read_text())
    cluster = kubeconfig["clusters"][0]["cluster"]
    authority = Path(cluster.pop("certificate-authority")).read_bytes()
    cluster["certificate-authority-data"] = base64.b64encode(authority).decode()
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "kubeconfig").write_text(json.dumps(kubeconfig))
    os.chmod(config_dir, 0o755)
    os.chown(config_dir / "kubeconfig", 10001, 10001)  # the container's user alone reads it (a masters token)
    os.chmod(config_dir / "kubeconfig", 0o400)
    for address in (f"//{dev_server.address}", cluster["server"]):
        docker_host.expose(urlparse(address).port)

    queue = f"image-{unique}"
    client = docker_host.client()
    container = client.containers.run(  # as deploy/base's Deployment runs it: read-only, no capabilities
        worker_image.image, ["worker", "--task-queue", queue, "--metrics-port", "9464"], detach=True,
        network_mode="host", read_only=True, tmpfs={"/tmp": ""}, cap_drop=["ALL"], security_opt=["no-new-privileges"],
        environment={"TEMPORAL_ADDRESS": dev_server.address, "KUBECONFIG": "/config/kubeconfig"},
        volumes={str(config_dir): {"bind": "/config", "mode": "ro"}}, name=f"worker-{unique}")
    try:
        deadline = time.monotonic() + 120
        while b"worker ready" not in container.logs():
            container.reload()
            assert container.status == "running" and time.monotonic() < deadline, container.logs()[-3000:]
            time.sleep(0.5)
        rollout = canary_rollout(name=f"img-{unique}", namespace=workload, deployment="web",
                                 image="registry.local/web:2.0.0",
                                 steps=[{"setWeight": 25}, {"pause": {"duration": "2s"}}, {"setWeight": 100}])
        handle = await start_workflow(dev_client, rollout, queue, "ci-bot")
        status = await dev_client.get_workflow_handle(handle.id, result_type=RolloutStatus).result()
        assert status.phase is Phase.HEALTHY, (status.message, container.logs()[-3000:])
        api = kube_config.new_client_from_config(str(local_cluster.kubeconfig))
        try:
            deployment = kube.AppsV1Api(api).read_namespaced_deployment("web", workload)
        finally:
            api.close()
        assert deployment.spec.template.spec.containers[0].image == "registry.local/web:2.0.0"
        assert [entry.detail.split()[0] for entry in status.history if entry.event == "weight-set"] == ["25%", "100%"], \
            status.history
        scraped = docker_host.inside([sys.executable, "-c", "import urllib.request; print(urllib.request.urlopen("
                                      "'http://127.0.0.1:9464/metrics', timeout=10).read().decode())"])
        assert "# TYPE" in scraped.stdout, scraped.stdout[:500]
    finally:
        container.stop(timeout=30)
        logs = container.logs().decode(errors="replace")
        container.remove(force=True)
        client.close()
    assert "Traceback" not in logs, logs[-3000:]
