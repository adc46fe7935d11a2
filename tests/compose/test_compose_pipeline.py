"""A pipeline over three Compose hosts (three Docker engines, each in its own network namespace) in two
waves, pulling the bundle's image by digest from the tests' registry: the third host's health check fails,
so the wave fails fast and the completed hosts are rolled back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from tests.compose.helpers import REPO, compose_document, containers, hosts_env


async def test_three_hosts_in_two_waves_one_failing_fails_fast_and_rolls_back(
        dev_server, registry, release_worker_processes, unique, tmp_path):
    from localcluster.dockerhost import DockerHost

    hosts = [DockerHost(Path(tempfile.mkdtemp(prefix="dh", dir="/tmp")), name=f"web-{i}").start() for i in (1, 2, 3)]
    try:
        project = f"pipe{unique}".lower()
        for host in hosts:
            host.mirror(registry)
        old = hosts[0].push(hosts[0].service_image("shop/web", "1.0.0"), registry, f"shop/web-{unique}", "1.0.0")
        pinned = hosts[0].push(hosts[0].service_image("shop/web", "2.0.0"), registry, f"shop/web-{unique}", "2.0.0")
        for host in hosts:
            service = compose_document("up", project, old, replicas=2)["spec"]["target"]["composeHost"]["compose"]
            assert host.compose(project, service, "up", "-d", "--wait").returncode == 0
        template = compose_document("web", project, f"{registry.host}/shop/web-{unique}:template", replicas=2,
                                    deadline=10)
        failing = {"host": "web-3", "compose": {"services": {"web": {
            "healthcheck": {"test": ["CMD", "false"], "interval": "1s", "retries": 1}}}}}
        document = {"apiVersion": "rollouts.durable.dev/v1alpha1", "kind": "Pipeline",
                    "metadata": {"name": f"hosts-{unique}", "environment": "test"},
                    "spec": {"bundle": {"images": {"web": f"{registry.host}/shop/web-{unique}:2.0.0"}}, "stages": [
                        {"name": "prod", "rollout": template, "failFast": True, "onFailure": "rollbackCompleted",
                         "waves": [{"targets": [{"composeHost": {"host": "web-1"}}]},
                                   {"maxParallel": 2, "targets": [{"composeHost": {"host": "web-2"}},
                                                                  {"composeHost": failing}]}]}]}}
        path = tmp_path / "pipeline.yaml"
        path.write_text(yaml.safe_dump(document))
        queue = f"hosts-{unique}"
        release_worker_processes(dev_server.address, queue, env=hosts_env(tmp_path, *hosts, projects=[project]))  # every family
        result = subprocess.run([sys.executable, "-m", "starters.cli", "pipeline", "start", "-f", str(path), "--wait",
                                 "--json"], capture_output=True, text=True, cwd=REPO, timeout=300,
                                env={**os.environ, "TEMPORAL_ADDRESS": dev_server.address, "ROLLOUT_TASK_QUEUE": queue,
                                     "ROLLOUT_USER": "ci-bot"})
        assert result.returncode != 0 and "Traceback" not in result.stderr, result.stdout[-3000:] + result.stderr
        status = json.loads(result.stdout.strip().splitlines()[-1])
        assert status["phase"] == "Degraded" and status["reason"] == "TargetFailed", status
        targets = {t["key"]: t for wave in status["pipeline"]["stages"][0]["waves"] for t in wave["targets"]}
        assert targets["web-3"]["state"] == "failed" and targets["web-3"]["reason"] == "ProgressDeadlineExceeded"
        assert "web-3/" in targets["web-3"]["message"], targets["web-3"]
        for key in ("web-1", "web-2"):  # verified on the pinned digest, then rolled back
            assert targets[key]["verifiedRevision"] == pinned and targets[key]["state"] == "rolledBack", targets[key]
        for host in hosts:  # every host back on the old image (web-1 and web-2 undone, web-3 never replaced)
            running = containers(host, project)
            assert [(c["Config"]["Image"], c["State"]["Health"]["Status"]) for c in running] == [(old, "healthy")] * 2, \
                (host.name, [c["Config"]["Image"] for c in running])
    finally:
        for host in hosts:
            host.stop()
