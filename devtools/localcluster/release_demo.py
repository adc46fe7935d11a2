"""`rollout demo --release`: a staged release of a desktop app, everything local — moto's S3 on
loopback holding a new TUF repository, the Temporal dev server, a worker with the repository's keys, a
fleet of 20,000 simulated devices with Prometheus scraping its crash beacons for the gate — then the
release printed phase by phase (the demo approves the last phase unless `--interactive`), and at the
end a real `rollout-agent update` on a device directory."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from localcluster import REPO
from localcluster.demo import run_deciding, start_worker, temporal_server
from localcluster.devserver import state_dir
from localcluster.fleet import Fleet
from localcluster.prometheus import PrometheusServer
from localcluster.updates import S3Server, device_config, make_artifact, new_repository, publish_to_everyone
from models.names import TASK_QUEUE
from models.release import Release, parse_release

BUCKET, PREFIX = "demo-updates", "desktop-app"
CRASH_GATE = {"name": "crash-rate", "metrics": [{
    "name": "crashes-vs-previous", "count": 2, "interval": "3s", "inconclusiveLimit": 1,
    "successCondition": "result[0] < 2",
    "provider": {"prometheus": {"query": (
        '(sum(rate(fleet_crashes_total{version="2.4.0"}[20s])) / sum(fleet_devices{version="2.4.0"}))'
        ' / (sum(rate(fleet_crashes_total{version!="2.4.0"}[20s])) / sum(fleet_devices{version!="2.4.0"}))')}}}]}


def demo_release(artifact: Path) -> Release:
    """The embedded default: three phases with short bakes, a crash-rate gate, an approval."""
    gate = {"templates": [{"templateName": "crash-rate"}]}
    return parse_release({
        "apiVersion": "rollouts.durable.dev/v1alpha1", "kind": "Release",
        "metadata": {"name": "desktop-app", "environment": "demo"},
        "spec": {
            "artifact": {"file": str(artifact), "version": "2.4.0", "platform": "linux-x86_64"},
            "channel": {"updater": {"repository": {"bucket": BUCKET, "prefix": PREFIX}, "channel": "stable"}},
            "phases": [{"percent": 5, "bake": "8s", "analysis": gate}, {"percent": 20, "bake": "8s", "analysis": gate},
                       {"percent": 50, "bake": "5s", "approval": {"approvers": ["release-manager"]}}],
            "observe": {"prometheus": {"query": '100 * sum(fleet_devices{version="{{args.version}}"}) '
                                                '/ sum(fleet_devices)'}},
            "analysis": {"templates": [CRASH_GATE]}}})


def run_release_demo(interactive: bool) -> int:
    home = state_dir() / "release-demo"
    stopping: list = []
    try:
        print("== 1/4 S3 (moto on loopback) and a new TUF repository", flush=True)
        s3 = S3Server().start()
        stopping.append(s3.stop)
        os.environ.update(s3.environment())
        workdir = home / os.urandom(4).hex()
        setup = new_repository(s3, BUCKET, PREFIX, workdir / "publisher")
        print(f"   s3://{BUCKET}/{PREFIX} at {s3.url}; root for devices: {setup.root}")
        artifacts = workdir / "artifacts"  # the worker's artifact root (apart from its keys)
        artifacts.mkdir(parents=True)
        os.environ["DURABLE_ROLLOUTS_ARTIFACT_ROOTS"] = str(artifacts)
        publish_to_everyone(s3, setup, artifacts, "2.3.1")  # what the fleet runs before the demo

        print("== 2/4 a fleet of 20,000 simulated devices on 2.3.1, and Prometheus", flush=True)
        fleet = Fleet(setup, workdir / "fleet", devices=20_000, version="2.3.1", online=0.5)
        fleet.crash_rates = {"2.3.1": 0.002, "2.4.0": 0.002}  # as crashy as before: the gate passes
        fleet.start()
        stopping.append(fleet.stop)
        prometheus = PrometheusServer(workdir / "prometheus", targets=[fleet.address]).start()
        stopping.append(prometheus.stop)
        print(f"   fleet metrics on http://{fleet.address}/metrics, Prometheus {prometheus.url}")

        print("== 3/4 Temporal dev server and a worker", flush=True)
        temporal_server(stopping)
        start_worker({**setup.environment(), "PROMETHEUS_URL": prometheus.url,
                      "DURABLE_ROLLOUTS_ARTIFACT_ROOTS": str(artifacts)}, stopping)

        release = demo_release(make_artifact(artifacts, "2.4.0"))
        print("\n== 4/4 rollout release publish --wait", flush=True)
        code = asyncio.run(run_deciding(_publish(release), release.rollout_id, interactive))
        fleet.wait_ticks(12)
        print(f"\nfleet: {fleet.share('2.4.0'):.1f}% of the simulated devices on 2.4.0")
        print(_real_device(setup, workdir), flush=True)
        return code
    finally:
        for stop in reversed(stopping):
            stop()


async def _publish(release: Release) -> int:
    from starters import release as releases

    return await releases.publish(release, wait=False, timeout=0, task_queue=os.environ.get("ROLLOUT_TASK_QUEUE",
                                                                                           TASK_QUEUE), as_json=False)


def _real_device(setup, workdir: Path) -> str:
    config = device_config(setup, workdir / "laptop", "laptop-1")
    done = subprocess.run([sys.executable, "-m", "rollout_agent.cli", "update", "--json", "--config", str(config)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    try:
        outcome = json.loads(done.stdout).get("outcome") or {}
    except ValueError:
        return f"rollout-agent update: exit {done.returncode}: {done.stderr.strip()}"
    return (f"rollout-agent update --config {config}: exit {done.returncode}, "
            f"{outcome.get('stage', 'up to date')} {outcome.get('message', '')}".rstrip())
