"""The Compose-host tests' fixtures: a real Docker engine in a private network namespace (session, one per
xdist worker: localcluster/dockerhost.py) and `rollout` against a worker process serving the `docker`
family with that host in its hosts file."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.compose.helpers import REPO, SECRET, compose_document, hosts_env


@pytest.fixture(scope="session")
def docker_host():
    from localcluster.dockerhost import DockerHost

    host = DockerHost(Path(tempfile.mkdtemp(prefix="dh", dir="/tmp")), name="web-1", tls=True).start()
    host.start_haproxy("web", 18080)
    yield host
    host.stop()


@pytest.fixture
def compose(dev_server, release_worker_processes, docker_host, unique, tmp_path):
    """`rollout` against a `docker` worker process; `compose.spec(...)` writes a document for project
    `compose.project` on the host, `compose.up(image)` brings the project up with the real Compose CLI."""
    queue = f"compose-{unique}"

    def run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "starters.cli", *args], capture_output=True, text=True,
                                cwd=REPO, env=env, timeout=timeout)
        assert "Traceback" not in result.stderr, result.stderr
        return result

    run.project = f"shop{unique}".lower().replace("_", "-")
    run.worker_env = {**hosts_env(tmp_path, docker_host, projects=[run.project]), "ROLLOUT_SECRET_SHOP_TOKEN": SECRET}
    release_worker_processes(dev_server.address, queue, "--targets", "docker", env=run.worker_env)
    env = {**os.environ, "TEMPORAL_ADDRESS": dev_server.address, "ROLLOUT_TASK_QUEUE": queue, "ROLLOUT_USER": "ci-bot"}

    def spec(name: str, image: str, **kwargs) -> str:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(compose_document(name, run.project, image, **kwargs)))
        return str(path)

    def up(image: str, replicas: int = 3) -> None:
        document = compose_document("up", run.project, image, replicas=replicas)["spec"]["target"]["composeHost"]
        result = docker_host.compose(run.project, document["compose"], "up", "-d", "--wait")
        assert result.returncode == 0, result.stderr

    run.spec, run.up = spec, up
    run.address, run.queue = dev_server.address, queue
    yield run
    client = docker_host.client()
    for container in client.containers.list(all=True, filters={"label": f"com.docker.compose.project={run.project}"}):
        container.remove(force=True)
    client.close()
    docker_host.clear_backend("web")
