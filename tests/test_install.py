"""The product installs: deploy/Dockerfile's steps — its COPY lines, then `pip install ./rollout-agent .` — are
replayed into a fresh virtualenv, from wheels built here and the dependencies' wheels scripts/setup keeps
(`--no-index`: nothing is downloaded). No editable install, no repository on `sys.path`: every command runs
from an empty directory with the venv's own interpreter. The dev tools are not in it, and say so."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from tests.helpers import eventually

REPO = Path(__file__).resolve().parent.parent
WHEELHOUSE = Path(os.environ.get("DURABLE_ROLLOUTS_CACHE", Path.home() / ".cache" / "durable-rollouts")) / "wheelhouse"
pytestmark = pytest.mark.slow


def dockerfile_copies() -> list[str]:
    """The sources deploy/Dockerfile copies into its image (`COPY src ./dst`), in its order."""
    lines = (REPO / "deploy" / "Dockerfile").read_text().splitlines()
    return [part for line in lines if line.startswith("COPY ") and not line.startswith("COPY --from")
            for part in line.split()[1:-1]]


def dockerfile_installs() -> list[str]:
    """The local projects deploy/Dockerfile's `pip install ...` installs, in its order (not its options)."""
    line = next(line for line in (REPO / "deploy" / "Dockerfile").read_text().splitlines()
                if line.startswith("RUN ") and "pip install " in line)
    return [word for word in line.split("pip install ", 1)[1].split("&&")[0].split()
            if not word.startswith(("-", "$", "\\"))]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtualenv with the product as deploy/Dockerfile installs it; its bin directory."""
    assert (WHEELHOUSE / ".complete").exists(), f"no wheelhouse at {WHEELHOUSE}: run scripts/setup"
    root = tmp_path_factory.mktemp("install")
    source, dist = root / "source", root / "dist"
    source.mkdir()
    for name in dockerfile_copies():  # what the image gets, and nothing else (no build/ or egg-info leftovers)
        origin = REPO / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "build"))
        else:
            shutil.copy2(origin, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    projects = dockerfile_installs()  # each built into a wheel, installed as the image installs them
    assert projects, "deploy/Dockerfile installs nothing"
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), *projects],
                   cwd=source, check=True, timeout=300)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    # --no-compile: what is installed is the same; compiling every module of botocore and kubernetes ahead took
    # 40 of the 55 s this install took (an idle machine); the commands below compile what they import, once
    # (`run` lets them write their bytecode, which this machine's PYTHONDONTWRITEBYTECODE would forbid).
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q", "install",
                    "--no-compile", "--no-index", "--find-links", str(WHEELHOUSE), *sorted(map(str, dist.glob("*.whl")))],
                   check=True, timeout=600, cwd=root)
    return venv / "bin"


def run(bin_dir: Path, *args: str, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    """A command of the installed product, from an empty directory, with no trace of the repository."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    empty = bin_dir.parent.parent / "cwd"
    empty.mkdir(exist_ok=True)
    return subprocess.run(list(args), cwd=empty, env={**env, **kwargs.pop("env", {})}, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def test_the_wheels_hold_the_product_and_not_the_dev_tools(installed):
    probe = run(installed, str(installed / "python"), "-c", (
        "import importlib.util as u, json, sys;"
        "print(json.dumps({m: u.find_spec(m) is not None for m in "
        "('models', 'workflows', 'activities', 'workers', 'starters', 'rollout_agent', 'localcluster', 'tests', 'bench')}));"
        "print(json.dumps([p for p in sys.path if p.startswith(sys.argv[1])]));"
        "import models, starters, rollout_agent, importlib.metadata as md;"
        "print(json.dumps([m.__file__ for m in (models, starters, rollout_agent)]));"
        "print(json.dumps([d.metadata['Name'] for d in md.distributions() if (d.read_text('direct_url.json') or '')"
        ".find('editable') >= 0]))"), str(REPO))
    assert probe.returncode == 0, probe.stderr
    found, repo_paths, origins, editable = (json.loads(line) for line in probe.stdout.splitlines())
    site = str(installed.parent / "lib")
    assert all(origin.startswith(site) for origin in origins), origins
    assert editable == [], f"editable installs: {editable}"
    assert found == {"models": True, "workflows": True, "activities": True, "workers": True, "starters": True,
                     "rollout_agent": True, "localcluster": False, "tests": False, "bench": False}
    assert repo_paths == [], "the repository is on the installed product's sys.path"


def test_every_command_starts_and_every_example_validates(installed):
    rollout = str(installed / "rollout")
    shown = run(installed, rollout, "--help")
    assert shown.returncode == 0, shown.stderr
    assert "validate" in shown.stdout and "worker" in shown.stdout and "demo" not in shown.stdout
    missing = run(installed, rollout, "demo")
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.startswith("rollout: `rollout demo` comes with the dev tools"), missing.stderr
    assert "Traceback" not in missing.stderr
    schema = run(installed, rollout, "schema")
    assert schema.returncode == 0, schema.stderr
    assert json.loads(schema.stdout)["title"]
    examples = sorted((REPO / "examples").rglob("*.yaml"))
    assert len(examples) >= 19
    for example in examples:  # a Pipeline through `rollout pipeline validate`, a Rollout or Release `rollout validate`
        pipeline = yaml.safe_load(example.read_text())["kind"] == "Pipeline"
        checked = run(installed, rollout, *(["pipeline"] if pipeline else []), "validate", "-f", str(example))
        assert checked.returncode == 0, f"{example.name}: {checked.stderr or checked.stdout}"


async def test_a_worker_from_the_wheels_connects_registers_and_drains(installed, dev_server, dev_client, tmp_path, unique):
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [str(installed / "rollout"), "worker", "--task-queue", f"install-{unique}"],
            cwd=installed.parent.parent, stdout=out, stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
            | {"TEMPORAL_ADDRESS": dev_server.address, "KUBECONFIG": str(tmp_path / "no-kubeconfig")})
    try:
        deadline = time.monotonic() + 90
        while not re.search(rb"worker ready: .* task-queue=install-", log.read_bytes()):
            assert worker.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
        queue = TaskQueue(name=f"install-{unique}", kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL)
        request = DescribeTaskQueueRequest(namespace="default", task_queue=queue,
                                           task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)

        async def polling():
            return (await dev_client.workflow_service.describe_task_queue(request)).pollers

        await eventually(polling, timeout=30, what="the installed worker polling its task queue")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0, log.read_text()[-2000:]
    finally:
        if worker.poll() is None:
            worker.kill()
    assert "Traceback" not in log.read_text()
