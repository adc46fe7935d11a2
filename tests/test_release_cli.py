"""A release the way people run one: `rollout release init`, `rollout release publish --wait` against a
`rollout worker` process, `rollout-agent update` on a device; and the worker SIGKILLed mid-publish
(between the versioned files and the timestamp) and mid-phase."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import yaml
from rollout_agent.agent import Agent, AgentConfig

from localcluster.faults import read_journal
from localcluster.updates import UpdaterSetup, device_config, make_artifact
from models.approvals import PromoteRequest
from models.release import ReleaseInput
from models.status import RolloutStatus
from models.updater import Repository
from tests.helpers import eventually
from tests.release_helpers import fleet, release_document, running_fleet
from workflows.release import StagedRelease

REPO = Path(__file__).resolve().parent.parent


def cli(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "starters.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def environment(dev_server, s3_server, setup: UpdaterSetup | None = None, artifacts: Path | None = None) -> dict:
    """A CLI's and a worker's environment; `artifacts`: the worker's one artifact root (apart from its keys)."""
    import os

    env = {**os.environ, **s3_server.environment(), "TEMPORAL_ADDRESS": dev_server.address, "ROLLOUT_USER": "ci"}
    if artifacts is not None:
        artifacts.mkdir(exist_ok=True)
        env["DURABLE_ROLLOUTS_ARTIFACT_ROOTS"] = str(artifacts)
    return env | (setup.environment() if setup else {})


def crash_gate(prometheus_url: str, version: str) -> dict:
    query = (f'(sum(rate(fleet_crashes_total{{version="{version}"}}[10s])) / sum(fleet_devices{{version="{version}"}}))'
             f' / (sum(rate(fleet_crashes_total{{version!="{version}"}}[10s])) / sum(fleet_devices{{version!="{version}"}}))')
    return {"name": "crash-rate", "metrics": [{"name": "crashes-vs-previous", "count": 2, "interval": "2s",
                                               "successCondition": "result[0] < 3", "failureLimit": 0,
                                               "inconclusiveLimit": 1,
                                               "provider": {"prometheus": {"address": prometheus_url, "query": query}}}]}


async def test_init_publish_and_update_through_the_commands(dev_server, s3_server, release_worker_processes, tmp_path,
                                                            unique):
    env = environment(dev_server, s3_server)
    prefix = f"cli-{unique}"
    keys = tmp_path / "keys"
    missing = cli(env, "release", "init", "--bucket", f"nobucket-{unique}", "--endpoint", s3_server.url,
                  "--keys", str(keys))
    assert missing.returncode == 4 and missing.stderr.startswith(f"rollout: bucket nobucket-{unique}: "), missing.stderr
    s3_server.client().create_bucket(Bucket=f"cli-{unique}")
    done = cli(env, "release", "init", "--bucket", f"cli-{unique}", "--prefix", prefix, "--endpoint", s3_server.url,
               "--keys", str(keys), "--threshold", "stable=2", "--public-read")
    assert done.returncode == 0, done.stderr
    assert f"export DURABLE_ROLLOUTS_TUF_SIGNERS={keys / 'worker' / 'signers.json'}" in done.stdout
    assert f"export DURABLE_ROLLOUTS_TUF_TRUST={keys / 'worker' / 'trust.json'}" in done.stdout
    worker_keys = json.loads((keys / "worker" / "signers.json").read_text()).values()
    offline_keys = json.loads((keys / "offline" / "signers.json").read_text()).values()
    assert not any(uri.endswith(("/root.pem", "/targets.pem")) for uri in worker_keys)  # offline keys stay offline
    assert sorted(uri.rpartition("/")[2] for uri in offline_keys) == ["root.pem", "targets.pem"]
    again = cli(env, "release", "init", "--bucket", f"cli-{unique}", "--prefix", prefix, "--endpoint", s3_server.url,
                "--keys", str(tmp_path / "other"))
    assert again.returncode == 5 and "already has a TUF repository" in again.stderr
    setup = UpdaterSetup(Repository(bucket=f"cli-{unique}", prefix=prefix, endpoint=s3_server.url), keys / "root.json",
                         keys / "worker" / "signers.json", f"{s3_server.url}/cli-{unique}/{prefix}",
                         keys / "worker" / "trust.json")
    root = json.loads(setup.root.read_text())["signed"]
    assert root["consistent_snapshot"] is True

    env = environment(dev_server, s3_server, setup, tmp_path / "artifacts")
    queue = f"release-{unique}"
    release_worker_processes(dev_server.address, queue, env=env)
    with running_fleet(s3_server, setup, tmp_path / "fleet", devices=2_000) as fleet_:
        fleet_.crash_rates = {"1.0.0": 0.002, "2.0.0": 0.002}  # as crashy as before: the gate passes
        artifact = make_artifact(tmp_path / "artifacts", "2.0.0")
        document = release_document(f"cli-{unique}", setup, artifact, "2.0.0", [
            {"percent": 10, "bake": "8s", "analysis": {"templates": [{"templateName": "crash-rate"}]}},
            {"percent": 50, "bake": "2s"}], analysis={"templates": [crash_gate(fleet_.prometheus_url, "2.0.0")]})
        spec = tmp_path / "release.yaml"
        spec.write_text(yaml.safe_dump(document.model_dump(mode="json", by_alias=True, exclude_none=True)))
        validated = cli(env, "validate", "-f", str(spec))
        assert validated.returncode == 0 and "valid release" in validated.stdout, validated.stderr
        published = await asyncio.to_thread(cli, env, "release", "publish", "-f", str(spec), "--wait",
                                            "--task-queue", queue, "--timeout", "120")
        assert published.returncode == 0, published.stdout + published.stderr
        assert "Healthy" in published.stdout and "published" in published.stdout
        status = json.loads(cli(env, "status", document.rollout_id, "--json").stdout)
        assert status["phase"] == "Healthy" and status["exposure"]["desired"] == 100.0
        assert [m["phase"] for m in status["analysis"]] == ["Successful"]
        listed = json.loads(cli(env, "list", "--strategy", "staged", "--json").stdout)
        assert {"rolloutId": document.rollout_id, "strategy": "staged", "phase": "Healthy"}.items() <= next(
            row for row in listed if row["rolloutId"] == document.rollout_id).items()
        shown = cli(env, "status", document.rollout_id).stdout
        assert "staged  ✔ Healthy" in shown and "exposure   desired 100% of devices" in shown, shown
        refused = cli(env, "halt", document.rollout_id)
        assert refused.returncode == 5 and "already finished" in refused.stderr

    config = device_config(setup, tmp_path / "device", "laptop-1")
    update = subprocess.run([sys.executable, "-m", "rollout_agent.cli", "update", "--json", "--config", str(config)],
                            capture_output=True, text=True, timeout=120)
    assert update.returncode == 0, update.stdout + update.stderr
    assert json.loads(update.stdout)["outcome"] == {"stage": "installed", "ok": True, "message": "nothing -> 2.0.0"}


async def test_a_worker_killed_mid_publish_leaves_the_old_or_the_new_release(dev_server, dev_client, s3_server,
                                                                             updater_setup, release_worker_processes,
                                                                             tmp_path, unique, fleet):
    setup = updater_setup
    journal = tmp_path / "kills.jsonl"
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"journal": str(journal), "s3": [{"after_put": ".snapshot.json", "max": 1}]}))
    env = {**environment(dev_server, s3_server, setup, tmp_path / "artifacts"), "DURABLE_ROLLOUTS_KILL_PLAN": str(plan)}
    queue = f"release-{unique}"
    worker = release_worker_processes(dev_server.address, queue, env=env)
    release = release_document(f"kill-{unique}", setup, make_artifact(tmp_path / "artifacts", "2.0.0"), "2.0.0",
                               [{"percent": 30, "bake": "1h"}])
    handle = await dev_client.start_workflow(StagedRelease.run, ReleaseInput(release=release),
                                             id=f"{release.rollout_id}-{unique}", task_queue=queue)
    await eventually(worker.exited, timeout=60, what="the worker killed after writing the new snapshot")
    kill = read_journal(journal)[0]
    assert kill["key"].endswith(".snapshot.json")
    reader = Agent(AgentConfig.load(str(device_config(setup, tmp_path / "reader", "reader"))))
    check = reader.check()  # the new versioned files exist, the timestamp still names the old snapshot
    assert (check.state.version, check.state.basis_points) == ("1.0.0", 10_000), "the old release, whole"

    release_worker_processes(dev_server.address, queue, env=env)  # the journal says the kill happened: no more
    async def baking():
        s = await handle.query("status", result_type=RolloutStatus)
        return s if s.reason == "Baking" else None
    await eventually(baking, timeout=90, what="the retried publish committed")
    check = reader.check()
    assert (check.state.version, check.state.basis_points) == ("2.0.0", 3_000), "the new release, whole"
    await asyncio.to_thread(fleet.wait_ticks, 12)
    assert abs(fleet.share("2.0.0") - 30) <= 1
    await handle.cancel()


async def test_a_worker_killed_mid_phase_resumes_at_the_same_phase_with_the_same_cohort(
        dev_server, dev_client, s3_server, updater_setup, release_worker_processes, tmp_path, unique, fleet):
    setup = updater_setup
    env = environment(dev_server, s3_server, setup, tmp_path / "artifacts")
    queue = f"release-{unique}"
    worker = release_worker_processes(dev_server.address, queue, env=env)
    release = release_document(f"phase-{unique}", setup, make_artifact(tmp_path / "artifacts", "2.0.0"), "2.0.0",
                               [{"percent": 20, "bake": "1h"}, {"percent": 40, "bake": "1h"}])
    handle = await dev_client.start_workflow(StagedRelease.run, ReleaseInput(release=release),
                                             id=f"{release.rollout_id}-{unique}", task_queue=queue)

    async def baking(step: int):
        s = await handle.query("status", result_type=RolloutStatus)
        return s if s.reason == "Baking" and s.current_step == step else None

    await eventually(lambda: baking(0), timeout=60, what="phase 1 baking")
    await asyncio.to_thread(fleet.wait_ticks, 12)
    cohort = fleet.on("2.0.0")
    worker.kill()
    release_worker_processes(dev_server.address, queue, env=env)
    s = await eventually(lambda: baking(0), timeout=60, what="phase 1 baking after the restart")
    assert s.exposure.desired == 20
    await handle.execute_update("promote", PromoteRequest(by="rm"))
    await eventually(lambda: baking(1), timeout=60, what="phase 2 baking")
    await asyncio.to_thread(fleet.wait_ticks, 12)
    assert cohort <= fleet.on("2.0.0") and abs(fleet.share("2.0.0") - 40) <= 1, "the same devices, and more"
    await handle.cancel()


async def test_nightly_builds_queue_on_a_release_train(dev_server, s3_server, updater_setup, release_worker_processes,
                                                       tmp_path, unique):
    env = environment(dev_server, s3_server, updater_setup, tmp_path / "artifacts")
    queue = f"train-{unique}"
    release_worker_processes(dev_server.address, queue, env=env)
    ids = []
    for night, version in enumerate(("7.0.1", "7.0.2"), start=1):
        document = release_document(f"nightly-{unique}", updater_setup, make_artifact(tmp_path / "artifacts", version), version,
                                    [{"percent": 50}], channel="nightly")
        spec = tmp_path / f"nightly-{night}.yaml"
        spec.write_text(yaml.safe_dump(document.model_dump(mode="json", by_alias=True, exclude_none=True)))
        done = await asyncio.to_thread(cli, env, "release", "publish", "-f", str(spec), "--train", "nightly",
                                       "--wait", "--timeout", "120", "--task-queue", queue)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"queued on train/test/nightly: 0 release(s) ahead; it runs as {document.rollout_id}/{night}" in done.stdout
        ids.append(f"{document.rollout_id}/{night}")
    statuses = [json.loads(cli(env, "status", rid, "--json").stdout) for rid in ids]
    assert [s["phase"] for s in statuses] == ["Healthy", "Healthy"] and "7.0.2" in statuses[1]["image"]
    reader = Agent(AgentConfig.load(str(device_config(updater_setup, tmp_path / "reader", "r", channel="nightly"))))
    assert reader.check().state.version == "7.0.2"
