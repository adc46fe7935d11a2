"""The ECS tests' fixtures: the AWS stand-in (session) and `rollout` against an ECS worker process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from localcluster.ecssite import new_ecs_service
from tests.ecs.helpers import REPO
from tests.helpers import ecs_document


@pytest.fixture(scope="session")
def aws():
    """moto's server for ECS, ELBv2 and CloudWatch on loopback, stricter than the services and keeping a call
    log, with the controller that plays ECS's scheduler and the ALB's data plane (localcluster/awsstandin.py,
    ecscontroller.py); two regions."""
    from localcluster.awsstandin import AwsStandIn
    from localcluster.ecscontroller import EcsController

    server = AwsStandIn().start()
    server.controller = EcsController(server.url, regions=("us-east-1", "us-west-2")).start()
    yield server
    server.controller.stop()
    server.stop()


@pytest.fixture
def ecs(dev_server, release_worker_processes, aws, unique, tmp_path):
    """`rollout` against an ECS worker process; `ecs.spec(...)` writes a document, `ecs.site` is the service."""
    queue = f"ecs-{unique}"
    release_worker_processes(dev_server.address, queue, "--targets", "aws", env=aws.environment())
    env = {**os.environ, "TEMPORAL_ADDRESS": dev_server.address, "ROLLOUT_TASK_QUEUE": queue, "ROLLOUT_USER": "ci-bot"}

    def run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "starters.cli", *args], capture_output=True, text=True,
                                cwd=REPO, env=env, timeout=timeout)
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def spec(name: str, image: str, **kwargs) -> str:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(ecs_document(name, run.site, image, **kwargs)))
        return str(path)

    run.spec = spec
    run.address, run.queue = dev_server.address, queue
    run.site = new_ecs_service(aws.url, f"shop-{unique}", controller=aws.controller)
    return run

