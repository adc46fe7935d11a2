"""Pipelines on three real local clusters (contexts local-1 … local-3, one kubeconfig), the bundle pushed
to a real registry (Debian's docker-registry on loopback) and pinned to the digest it reports; the dev
server; the `rollout` CLI as CI runs it; an approval from the real Web UI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from localcluster.behaviour import declare_images
from localcluster.workload import deploy
from models.approvals import AbortRequest, ApproveRequest
from models.status import Phase, RolloutStatus
from starters.pipeline import start_pipeline
from tests.helpers import eventually, read_audit
from tests.pipeline_helpers import pipeline, pipeline_document, stage

REPO = Path(__file__).resolve().parent.parent
OLD = "registry.local/web:1.0.0"


@pytest.fixture
def rollout_cli(dev_server, fleet_worker):
    env = {**os.environ, "TEMPORAL_ADDRESS": dev_server.address, "ROLLOUT_TASK_QUEUE": fleet_worker,
           "TEMPORAL_UI": dev_server.ui_url, "ROLLOUT_USER": "ci-bot"}

    async def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        result = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "starters.cli", *args],
                                         capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout)
        assert "Traceback" not in result.stderr, result.stderr
        return result

    run.env = env
    return run


def image_on(api, namespace: str) -> str:
    return client.AppsV1Api(api).read_namespaced_deployment("web", namespace).spec.template.spec.containers[0].image


def writes_of(fleet, index: int, namespace: str, image: str) -> int:
    return sum(1 for row in read_audit(fleet.clusters[index].audit_log, namespace, "web") if row["image"] == image)


async def status_of(dev_client, pid: str) -> RolloutStatus:
    return await dev_client.get_workflow_handle(pid).query("status", result_type=RolloutStatus)


@pytest.mark.timeout(600)  # five roll-outs on three clusters, two soaks of the CLI and Chromium: minutes under load
async def test_three_stages_one_digest_soak_and_two_approvals(
    dev_server, dev_client, fleet, fleet_apis, registry, rollout_cli, tmp_path, unique
):
    tag = f"2.0.0-{unique}"
    pinned = f"{registry.image('shop/web', tag)}@{registry.push('shop/web', tag)}"
    ns = {"dev": f"pd-{unique}", "staging": f"ps-{unique}", "prod": f"pp-{unique}"}
    deploy(fleet_apis[0], ns["dev"], "web", OLD, replicas=2, rps=20)
    deploy(fleet_apis[1], ns["staging"], "web", OLD, replicas=2, rps=20)
    for api in fleet_apis:
        deploy(api, ns["prod"], "web", OLD, replicas=2, rps=20)
    infra = {"name": "infra", "metric": {"name": "nodes", "provider": {"kubernetes": {"context": "local-3"}},
                                         "successCondition": "result['reachable'] and result['ready'] == result['nodes']"}}
    name = f"shop-{unique}"
    document = pipeline_document(name, registry.image("shop/web", tag), [
        stage("dev", ns["dev"], ["local-1"], template=f"w{unique}"),
        stage("staging", ns["staging"], ["local-2"], template=f"w{unique}"),
        stage("prod", ns["prod"], ["local-1", "local-2", "local-3"], template=f"w{unique}", maxParallel=2,
              gate={"checks": [infra], "soak": "25s", "approval": {"approvers": ["alice", "bob"], "minApprovals": 2}}),
    ])
    file = tmp_path / "pipeline.yaml"
    file.write_text(yaml.safe_dump(document))
    started = await rollout_cli("pipeline", "start", "-f", str(file), "--json")
    assert started.returncode == 0, started.stderr
    pid = json.loads(started.stdout.splitlines()[0])["rolloutId"]
    assert pid == f"pipeline/test/{name}"

    soaking = await eventually(lambda: _soaking(dev_client, pid), timeout=180, what="the soak before prod")
    assert soaking.pipeline.bundle == {"web": pinned}, "the tag was pinned to the registry's digest"
    tree = (await rollout_cli("status", pid)).stdout
    assert "✔ stage dev" in tree and "✔ stage staging" in tree and "‖ stage prod" in tree, tree
    assert "check infra: Successful" in tree and "soaking" in tree, tree

    waiting = await eventually(lambda: _approval(dev_client, pid), timeout=60, what="the prod approval")
    assert all(t.state == "pending" for w in waiting.pipeline.stages[2].waves for t in w.targets)
    early = await rollout_cli("promote", pid, "--by", "carol")
    assert early.returncode == 5 and "waits for approval under a policy" in early.stderr
    approved = await rollout_cli("approve", pid, "--by", "alice")
    assert approved.returncode == 0, approved.stderr

    # CI re-runs the job while the gate waits for bob: it attaches to the running pipeline and follows it
    again = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "starters.cli", "pipeline", "start", "-f", str(file), "--wait", "--json", "--timeout", "300",
        cwd=REPO, env=rollout_cli.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        line = await asyncio.wait_for(again.stdout.readline(), timeout=120)
        first = json.loads(line) if line.strip() else {}
        assert first.get("rolloutId") == pid and first.get("runId", "") is None, f"{line!r}: attached, not started"

        await asyncio.to_thread(_approve_in_web_ui, dev_server.ui_url, pid, "bob")
        decided = await eventually(lambda: _voted(dev_client, pid, "bob"), timeout=90, what="bob's vote from the Web UI")
        assert decided.accepted, decided.why
        out, err = await asyncio.wait_for(again.communicate(), timeout=400)
    except BaseException as failure:  # what the re-run said, beside whatever failed
        if again.returncode is None:
            again.kill()
        rest, said = await again.communicate()
        raise AssertionError(f"the re-run said: {rest.decode()[-1500:]}{said.decode()[-1500:]}") from failure
    if again.returncode != 0:
        s = await status_of(dev_client, pid)
        raise AssertionError(f"{out.decode()[-1500:]}{err.decode()}\napproval: {s.approval}\n"
                             f"decisions: {s.decisions}\nhistory: {s.history[-8:]}")
    assert "Traceback" not in err.decode(), err.decode()
    final = RolloutStatus.model_validate_json(out.decode().strip().splitlines()[-1])
    assert final.phase is Phase.HEALTHY, final.message
    assert [s.state for s in final.pipeline.stages] == ["verified"] * 3
    votes = {d.by: d.source for d in final.decisions if d.kind == "approve"}
    assert votes == {"alice": "cli", "bob": "web-ui"}

    for index, api in enumerate(fleet_apis):  # the same digest everywhere, each written once
        assert image_on(api, ns["prod"]) == pinned
        assert writes_of(fleet, index, ns["prod"], pinned) == 1
    assert image_on(fleet_apis[0], ns["dev"]) == pinned and image_on(fleet_apis[1], ns["staging"]) == pinned
    assert {t.verified_revision for s in final.pipeline.stages for w in s.waves for t in w.targets} == {pinned}

    at = {(h.event, h.detail.split(":")[0]): h.at for h in final.history}
    prod_start = min(h.at for h in final.history if h.event == "target-started" and h.detail.startswith("prod/"))
    assert (prod_start - at[("stage-verified", "staging")]).total_seconds() >= 25, "the soak held prod back"
    decided = next(h.at for h in final.history if h.event == "approval-decided")
    assert prod_start >= decided, "prod started only after both approvals"
    tree = (await rollout_cli("status", pid)).stdout
    assert tree.count(f"verified       on {pinned.rsplit('@', 1)[-1][:19]}") == 5, tree
    rerun = await rollout_cli("pipeline", "start", "-f", str(file), "--wait", "--json")  # after the end, as CI
    assert rerun.returncode == 0 and "delivering it anew" not in rerun.stderr, rerun.stdout[-1500:] + rerun.stderr
    assert RolloutStatus.model_validate_json(rerun.stdout.strip().splitlines()[-1]).phase is Phase.HEALTHY
    runs = [e async for e in dev_client.list_workflows(f"WorkflowId = '{pid}'")]
    assert len(runs) == 1, "the re-run jobs started no second delivery"
    listed = json.loads((await rollout_cli("list", "--pipeline", pid, "--json")).stdout)
    assert len(listed) == 5 and {row["pipeline"] for row in listed} == {pid}
    kinds = json.loads((await rollout_cli("list", "--strategy", "pipeline", "--json")).stdout)
    assert any(row["rolloutId"] == pid and row["kind"] == "Pipeline" for row in kinds)
    delivered = await rollout_cli("pipeline", "start", "-f", str(file))  # once more, after the end: each target read
    assert delivered.returncode == 0 and "checked just now: its 5 verified targets run it; not started again" in \
        delivered.stdout, delivered.stdout + delivered.stderr
    client.AppsV1Api(fleet_apis[2]).patch_namespaced_deployment("web", ns["prod"], {"spec": {"template": {"spec": {
        "containers": [{"name": "app", "image": "registry.local/web:0.9.0"}]}}}})  # someone put one back by hand
    drifted = await rollout_cli("pipeline", "start", "-f", str(file))
    assert "now runs registry.local/web:0.9.0" in drifted.stdout and "delivering it anew" in drifted.stdout, \
        drifted.stdout + drifted.stderr
    assert (await dev_client.get_workflow_handle(pid).describe()).run_id != runs[0].run_id, "a new delivery started"
    anew = dev_client.get_workflow_handle(pid, result_type=RolloutStatus)
    await anew.execute_update("abort", AbortRequest(by="test", reason="test over"))  # its targets stop cleanly
    assert (await anew.result()).phase is Phase.DEGRADED


async def _soaking(dev_client, pid: str) -> RolloutStatus | None:
    s = await status_of(dev_client, pid)
    return s if s.phase is Phase.PAUSED and s.reason == "TimedPause" else None


async def _voted(dev_client, pid: str, who: str):
    s = await status_of(dev_client, pid)
    return next((d for d in s.decisions if d.kind == "approve" and d.by == who), None)


async def _approval(dev_client, pid: str) -> RolloutStatus | None:
    s = await status_of(dev_client, pid)
    return s if s.approval is not None else None


def _approve_in_web_ui(ui_url: str, pid: str, who: str) -> None:
    from tests import webui

    with webui.browser_page() as page:
        webui.open_rollout(page, ui_url, pid)
        webui.send_signal(page, "approve", json.dumps({"by": who}))


async def test_fail_fast_stops_the_third_and_rolls_the_first_back(
    fleet, fleet_apis, registry, rollout_cli, tmp_path, unique
):
    """The bundle never gets ready on local-2 (its cluster declares the image so): local-1 and local-2 run
    together, local-1 is verified, local-2 fails; failFast: local-3 never starts; rollbackCompleted:
    local-1 goes back to the version before; the pipeline ends Degraded naming local-2."""
    tag = f"bad-{unique}"
    pinned = f"{registry.image('shop/web', tag)}@{registry.push('shop/web', tag)}"
    declare_images(client.CoreV1Api(fleet_apis[1]), {f"*:{tag}@*": {"ready": "never"}})
    namespace = f"pf-{unique}"
    for api in fleet_apis:
        deploy(api, namespace, "web", OLD, replicas=2, rps=20)
    document = pipeline_document(f"ff-{unique}", registry.image("shop/web", tag), [
        stage("prod", namespace, ["local-1", "local-2", "local-3"], template=f"f{unique}", maxParallel=2, deadline=12,
              failFast=True, onFailure="rollbackCompleted")])
    file = tmp_path / "pipeline.yaml"
    file.write_text(yaml.safe_dump(document))
    ended = await rollout_cli("pipeline", "start", "-f", str(file), "--wait", "--json")
    assert ended.returncode == 1, ended.stdout[-2000:] + ended.stderr
    final = RolloutStatus.model_validate_json(ended.stdout.strip().splitlines()[-1])
    assert final.phase is Phase.DEGRADED and final.reason == "TargetFailed"
    assert "local-2" in final.message and "ProgressDeadlineExceeded" in final.message, final.message
    assert "rolled back local-1" in final.message
    targets = {t.context: t.state for t in final.pipeline.stages[0].waves[0].targets}
    assert targets == {"local-1": "rolledBack", "local-2": "failed", "local-3": "pending"}
    assert image_on(fleet_apis[0], namespace) == OLD and image_on(fleet_apis[1], namespace) == OLD
    assert writes_of(fleet, 0, namespace, pinned) == 1 and writes_of(fleet, 1, namespace, pinned) == 1
    assert writes_of(fleet, 2, namespace, pinned) == 0 and image_on(fleet_apis[2], namespace) == OLD


async def test_worker_killed_mid_wave_and_at_the_gate(
    dev_server, dev_client, fleet, fleet_apis, registry, worker_processes, unique
):
    tag = f"slow-{unique}"  # 4 s to get ready: a roll-out is in flight when the worker dies
    pinned = f"{registry.image('shop/web', tag)}@{registry.push('shop/web', tag)}"
    namespace = f"pk-{unique}"
    for api in fleet_apis:
        declare_images(client.CoreV1Api(api), {f"*:{tag}@*": {"readyDelaySeconds": 4}})
        deploy(api, namespace, "web", OLD, replicas=2, rps=20)
    doc = pipeline(f"kill-{unique}", registry.image("shop/web", tag), [
        stage("a", namespace, ["local-1", "local-2"], template=f"k{unique}", maxParallel=2),
        stage("b", namespace, ["local-3"], template=f"k{unique}", gate={"approval": {}})])
    queue = f"kill-{unique}"
    first = worker_processes(dev_server.address, queue, kubeconfig=fleet.kubeconfig)
    handle = await start_pipeline(dev_client, doc, queue, "ci")
    await eventually(lambda: writes_of(fleet, 0, namespace, pinned) and writes_of(fleet, 1, namespace, pinned),
                     timeout=60, what="both of stage a's roll-outs under way")
    first.kill()
    second = worker_processes(dev_server.address, queue, kubeconfig=fleet.kubeconfig)
    await eventually(lambda: _approval(dev_client, doc.rollout_id), timeout=120, what="the gate before stage b")
    second.kill()
    worker_processes(dev_server.address, queue, kubeconfig=fleet.kubeconfig)
    await eventually(lambda: _approval(dev_client, doc.rollout_id), timeout=120, what="the gate, on the new worker")
    await handle.execute_update("approve", ApproveRequest(by="alice"))
    final: RolloutStatus = await asyncio.wait_for(handle.result(), 180)
    assert final.phase is Phase.HEALTHY, final.message
    for index in range(3):  # each effect once, on every cluster
        assert writes_of(fleet, index, namespace, pinned) == 1, f"local-{index + 1}"
        assert image_on(fleet_apis[index], namespace) == pinned
    assert [h.event for h in final.history].count("target-started") == 3, "no finished target ran again"
