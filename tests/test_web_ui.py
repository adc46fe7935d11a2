"""An approver in the real Temporal Web UI (the dev server's, driven by headless Chromium): the page
says what the rollout waits for and how to answer, and a `promote` signal sent from the UI's
"Send a Signal" dialog moves the rollout on."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from models.status import Phase, RolloutStatus
from starters.commands import start_workflow
from tests import webui
from tests.helpers import canary_document, canary_rollout, eventually, finished, paused_at

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "artifacts"


async def test_approver_sees_details_and_promotes_from_the_web_ui(
    dev_server, dev_client, cluster_worker, workload, unique, tmp_path
):
    rollout = canary_rollout(name=f"web-{unique}", namespace=workload, deployment="web",
                             image="registry.local/web:5.0.0",
                             steps=[{"setWeight": 25}, {"pause": {}}, {"setWeight": 100}])
    handle = await start_workflow(dev_client, rollout, cluster_worker, "test")
    await paused_at(handle, 1)

    def approve() -> str:
        with webui.browser_page() as page:
            webui.open_rollout(page, dev_server.ui_url, rollout.rollout_id)
            details = webui.current_details(page)
            webui.send_signal(page, "promote", '{"by": "web-ui-approver"}', screenshot=str(tmp_path / "signal.png"))
            return details

    details = await asyncio.to_thread(approve)  # the in-process worker keeps running meanwhile
    assert "Paused · WaitingForPromote · step 2 of 3 · canary weight 25%" in details
    assert f"rollout promote {rollout.rollout_id}" in details
    assert 'Send a Signal promote with input {"by": "your-name"}' in details

    final = await finished(handle, 60)
    assert final.phase is Phase.HEALTHY
    assert [(h.event, h.by) for h in final.history if h.event == "promoted"] == [("promoted", "web-ui-approver")]


async def test_production_approval_policy_from_the_cli_and_the_web_ui(
    dev_server, dev_client, cluster_worker, workload, unique, tmp_path, monkeypatch
):
    """2 of (group release-managers, ci-bot), the initiator (CI's GITHUB_ACTOR) may not approve: the
    CLI is refused for the initiator, a stranger and a second vote, takes alice's; the Web UI's
    `approve` signal from bob completes the approval and the rollout goes on."""
    monkeypatch.setenv("ROLLOUT_GROUP_RELEASE_MANAGERS", "alice,bob,carol")  # read by the in-process worker
    document = canary_document(name=f"pay-{unique}", environment="production", namespace=workload, deployment="web",
                               image="registry.local/web:5.1.0", steps=[
                                   {"setWeight": 25},
                                   {"approval": {"description": "promote to 100%", "minApprovals": 2,
                                                 "approvers": ["group:release-managers", "ci-bot"],
                                                 "forbidSelfApproval": True,
                                                 "instructions": "Check the **web** dashboard: error rate under 1%."}},
                                   {"setWeight": 100}])
    spec = tmp_path / "production.yaml"
    spec.write_text(yaml.safe_dump(document))
    rid = f"rollout/production/pay-{unique}"
    env = {k: v for k, v in os.environ.items() if k != "ROLLOUT_USER"}
    env.update(TEMPORAL_ADDRESS=dev_server.address, TEMPORAL_UI=dev_server.ui_url, ROLLOUT_TASK_QUEUE=cluster_worker,
               GITHUB_ACTOR="ci-bot")

    async def cli(*args: str) -> subprocess.CompletedProcess:
        result = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "starters.cli", *args], cwd=REPO,
                                         env=env, capture_output=True, text=True, timeout=120)
        assert "Traceback" not in result.stderr, result.stderr
        return result

    assert (await cli("start", "-f", str(spec))).returncode == 0
    handle = dev_client.get_workflow_handle(rid, result_type=RolloutStatus)
    status = await paused_at(handle, 1)
    assert (status.reason, status.started_by) == ("WaitingForApproval", "ci-bot")

    async def listed():
        rows = json.loads((await cli("list", "--awaiting-approval", "--environment", "production", "--json")).stdout)
        return [r for r in rows if r["rolloutId"] == rid]
    [row] = await eventually(listed, timeout=30, what="rollout list --awaiting-approval")
    assert row["awaitingApproval"] is True and row["strategy"] == "canary"

    self_approval = await cli("approve", rid)  # GITHUB_ACTOR=ci-bot started it
    assert self_approval.returncode == 2 and "ci-bot started this rollout and cannot approve it" in self_approval.stderr
    stranger = await cli("approve", rid, "--by", "mallory")
    assert stranger.returncode == 2 and "mallory is not an approver" in stranger.stderr
    stale = await cli("approve", rid, "--by", "alice", "--step", "3")  # meant for a later step: refused (state)
    assert stale.returncode == 5 and "meant for step 3, but the rollout is at step 2" in stale.stderr
    first = await cli("approve", rid, "--by", "alice", "--step", "2", "--comment", "dashboard green")
    assert first.returncode == 0 and "promote: 1 of 2 approvals" in first.stdout
    again = await cli("approve", rid, "--by", "alice")
    assert again.returncode == 2 and "alice has already voted" in again.stderr
    view = (await cli("status", rid)).stdout
    assert "► " in view and "promote" in view and "1/2  alice" in view

    screenshot = ARTIFACTS / "web-ui-approval.png"
    ARTIFACTS.mkdir(exist_ok=True)

    def approve_in_the_ui() -> str:
        with webui.browser_page() as page:
            webui.open_rollout(page, dev_server.ui_url, rid)
            details = webui.current_details(page)
            page.screenshot(path=str(ARTIFACTS / "web-ui-approval-details.png"))
            webui.send_signal(page, "approve", '{"by": "bob", "choice": "promote", "comment": "from the UI"}',
                              screenshot=str(screenshot))
            return details

    details = await asyncio.to_thread(approve_in_the_ui)
    assert "Waiting for approval: step 2 — promote to 100%" in details
    assert "error rate under 1%" in details and "votes: alice: promote" in details, details
    assert 'Send a Signal approve with input {"by": "your-name", "choice": "promote", "comment": "", "step": 2}' in details
    assert screenshot.stat().st_size > 10_000

    final: RolloutStatus = await finished(handle, 90)
    assert final.phase is Phase.HEALTHY and final.canary_weight == 100
    assert [(d.by, d.source, d.accepted) for d in final.decisions] == [("alice", "cli", True), ("bob", "web-ui", True)]
    history = (await cli("history", rid)).stdout
    assert "approve       alice            cli     accepted  promote; dashboard green" in history, history
    assert "approve       bob              web-ui  accepted  promote; from the UI" in history
    assert await eventually(lambda: _not_listed(listed), timeout=30, what="no longer awaiting approval")


async def _not_listed(listed) -> bool:
    return not await listed()
