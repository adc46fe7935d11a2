"""Scenarios for tests/record_histories.py that exercise approvals and the other decisions: an
approval policy with a group, votes by update and signal (one refused), an extend choice, a hold with
a weight override, an execution-window wait, notifications; skipAnalysis and promote --full; a
blue-green whose promotion needs an approval."""

from __future__ import annotations

import base64
import contextlib
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from temporalio import activity
from temporalio.client import Client, WorkflowUpdateFailedError

from activities.approvers import ApproverActivities
from activities.identity import IdentityActivities
from localcluster.issuer import LocalIssuer
from models.approvals import (
    ApproveRequest,
    PauseRequest,
    PromoteRequest,
    ResumeRequest,
    SetWeightRequest,
    SkipAnalysisRequest,
)
from models.notifications import NotifyInput
from models.spec import parse_rollout
from models.status import RolloutStatus
from starters.commands import start_workflow
from tests.helpers import (
    canary_document,
    eventually,
    paused_at,
    sealed_start,
    server_time,
    with_reason,
    workers_token_key,
)
from workflows.registry import ALL_WORKFLOWS


def decision_fakes() -> list:
    @activity.defn(name="notify")
    async def notify(note: NotifyInput) -> list[str]:
        return note.channels

    os.environ["ROLLOUT_GROUP_SRE"] = "carol,dave"
    return [notify, ApproverActivities().resolve_groups]


async def approved(client: Client, queue: str):
    now = datetime.now(UTC)
    choices = [{"name": "promote", "action": "promote"}, {"name": "rollback", "action": "abort"},
               {"name": "extend-soak", "action": "extend", "duration": "2s"}]
    document = canary_document(name="recorded-approved", steps=[
        {"setWeight": 20}, {"pause": {"duration": "2s"}},
        {"approval": {"approvers": ["bob", "group:sre"], "minApprovals": 2, "forbidSelfApproval": True,
                      "choices": choices, "timeout": "1h", "onTimeout": "abort"}},
        {"setWeight": 100}])
    document["spec"]["notifications"] = [{"channel": "releases", "minSeverity": "info"}]
    document["spec"]["executionWindows"] = {"freezes": [
        {"start": (now - timedelta(hours=1)).isoformat(), "end": (now + timedelta(seconds=3)).isoformat()}]}
    handle = await start_workflow(client, parse_rollout(document), queue, "alice")
    await paused_at(handle, 1)
    await handle.execute_update("pause", PauseRequest(by="bob", comment="hold on"))
    await handle.execute_update("setWeight", SetWeightRequest(by="bob", weight=30))
    await with_reason(handle, "PausedByUser")
    await handle.signal("resume", ResumeRequest(by="carol"))
    await paused_at(handle, 2)
    await handle.execute_update("approve", ApproveRequest(by="bob", choice="extend-soak"))
    await handle.signal("approve", ApproveRequest(by="carol", choice="extend-soak"))
    await with_reason(handle, "Soaking")
    await with_reason(handle, "WaitingForApproval")
    await handle.signal("approve", ApproveRequest(by="alice"))  # the initiator: refused, recorded
    await handle.execute_update("approve", ApproveRequest(by="bob"))
    await handle.signal("approve", ApproveRequest(by="dave", comment="ok"))
    await handle.result()
    return handle


async def skipped_and_full(client: Client, queue: str):
    document = canary_document(name="recorded-skipped", steps=[
        {"setWeight": 20}, {"analysis": {"templates": [{"templateName": "slow"}]}}, {"pause": {}},
        {"setWeight": 60}, {"setWeight": 100}])
    document["spec"]["analysis"] = {"templates": [{"name": "slow", "metrics": [
        # a long interval: the skip cancels a timer far from due (see record_histories.analysed on sdk-java#3088)
        {"name": "slow", "count": 50, "interval": "1h", "successCondition": "result[0] > 0.9",
         "provider": {"prometheus": {"address": "http://prometheus.invalid", "query": "up"}}}]}]}
    handle = await start_workflow(client, parse_rollout(document), queue, "recorder")
    await eventually(lambda: _analysing(handle), what="analysis running")
    await handle.execute_update("skipAnalysis", SkipAnalysisRequest(by="sre", comment="metrics lag"))
    await paused_at(handle, 2)
    await handle.execute_update("promote", PromoteRequest(by="sre", full=True))
    await handle.result()
    return handle


async def _analysing(handle) -> bool:
    status = await handle.query("status", result_type=RolloutStatus)
    return bool(status.analysis and status.analysis[0].measurements)


async def _verified_canary(client: Client, queue: str, issuer: LocalIssuer, name: str, initiator: str,
                           proven: str = "alice@example.com", start: str = ""):
    """A canary whose 2-of-N approval counts votes proven by `issuer`'s tokens, waiting at it; with the
    time the approval opened on the workflow's clock (a time-skipping server's runs ahead). Started by
    `initiator` as the CLI records it, with an ID token proving `proven` (`start`: that token, made by the caller)."""
    document = canary_document(name=name, environment="production", steps=[
        {"setWeight": 20},
        {"approval": {"approvers": ["group:release-managers"], "minApprovals": 2, "forbidSelfApproval": True,
                      "identity": {"issuer": issuer.url, "audience": "durable-rollouts:{rollout}",
                                   "groupsClaim": "groups"}}},
        {"setWeight": 100}])
    rollout = parse_rollout(document)
    with workers_token_key():  # held while the worker checks the start's sealed token
        token = start or issuer.mint(f"durable-rollouts:{rollout.rollout_id}", email=proven, at=await server_time(client))
        handle = await start_workflow(client, rollout, queue, initiator, starter_token=sealed_start(token, rollout))
        await paused_at(handle, 1)
        status = await eventually(lambda: _proof_asked(handle), what="an approval asking for ID tokens")
    return handle, status.approval.opened_at.timestamp()


async def verified(client: Client, queue: str):
    """2 verified votes (the local OIDC issuer): one refused by update (expired), one by update, one
    forged by signal (refused, recorded), one by signal."""
    issuer = LocalIssuer().start()
    try:
        handle, opened = await _verified_canary(client, queue, issuer, "recorded-verified", "alice@example.com")
        audience, managers = f"durable-rollouts:{handle.id}", ["release-managers"]
        try:
            expired = issuer.mint(audience, email="bob@example.com", groups=managers, at=opened - 120, lifetime=1)
            await handle.execute_update("approve", ApproveRequest(id_token=expired))
        except WorkflowUpdateFailedError:
            pass
        await handle.execute_update("approve", ApproveRequest(id_token=issuer.mint(
            audience, email="bob@example.com", groups=managers, at=opened), comment="green"))
        carol = issuer.mint(audience, email="carol@example.com", groups=managers, at=opened)
        await handle.signal("approve", ApproveRequest(id_token=issuer.forge(carol, email="dave@example.com")))
        await handle.signal("approve", ApproveRequest(id_token=carol))
        await handle.result()
    finally:
        issuer.stop()
    return handle


async def verified_folded(client: Client, queue: str):
    """Votes by signal compared as people write names (workflow.patched "names-compared-case-insensitively"):
    started by the login name `alice`, bob votes by update, then by signal alice's own token (refused:
    she started it) and bob's in other case (refused: he voted), and carol's (counted)."""
    issuer = LocalIssuer().start()
    try:
        handle, opened = await _verified_canary(client, queue, issuer, "recorded-folded", "alice")
        audience, managers = f"durable-rollouts:{handle.id}", ["release-managers"]

        def token(email: str) -> str:
            return issuer.mint(audience, email=email, groups=managers, at=opened)

        await handle.execute_update("approve", ApproveRequest(id_token=token("bob@example.com")))
        await handle.signal("approve", ApproveRequest(id_token=token("alice@example.com")))
        await handle.signal("approve", ApproveRequest(id_token=token("BOB@example.com")))
        await handle.signal("approve", ApproveRequest(id_token=token("carol@example.com")))
        await handle.result()
    finally:
        issuer.stop()
    return handle


async def starter_proven(client: Client, queue: str):
    """The starter proven by an ID token (workflow.patched "starter-proven"): mallory as the CLI records
    it, alice as her token proves; alice's vote refused by signal (she started it), her start token sent as
    a vote refused (used), bob's and carol's counted."""
    with local_issuer() as issuer:
        audience, managers = "durable-rollouts:rollout/production/recorded-starter", ["release-managers"]
        start = issuer.mint(audience, email="alice@example.com", groups=managers, at=await server_time(client))
        handle, opened = await _verified_canary(client, queue, issuer, "recorded-starter", "mallory", start=start)
        votes = [issuer.mint(audience, email="alice@example.com", groups=managers, at=opened), start,
                 *(issuer.mint(audience, email=f"{who}@example.com", groups=managers, at=opened) for who in ("bob", "carol"))]
        for vote in votes:
            await handle.signal("approve", ApproveRequest(id_token=vote))
        await handle.result()
        return handle


@contextlib.contextmanager
def local_issuer():
    issuer = LocalIssuer().start()
    try:
        yield issuer
    finally:
        issuer.stop()


async def resume_refused(client: Client, queue: str):
    """A first run handed a `resume` (past its approval) by whoever started it: refused, nothing changed
    (workflow.patched "resume-only-when-continued")."""
    from models.status import Resume, RolloutInput
    from workflows.canary import CanaryRollout

    rollout = parse_rollout(canary_document(name="recorded-resume", steps=[
        {"setWeight": 20}, {"approval": {"approvers": ["bob"]}}, {"setWeight": 100}]))
    status = RolloutStatus(rollout_id=rollout.rollout_id, name="recorded-resume", environment=rollout.metadata.environment,
                           strategy="canary", target="web", image=rollout.spec.image, current_step=2)
    handle = await client.start_workflow(CanaryRollout.run, RolloutInput(
        rollout=rollout, requested_by="mallory", resume=Resume(status=status, step=2)), id=rollout.rollout_id,
        task_queue=queue)
    await handle.result()
    return handle


def identity_activities() -> list:
    identity = IdentityActivities(httpx.Client())
    return [identity.fetch_signing_keys, identity.verify_vote]


async def sealed(client: Client, queue: str):
    """Votes with sealed tokens: bob's by update as the CLI seals it (starters/identity.sealed), carol's
    by signal as the codec server seals what the Web UI sends (checked by the verify_vote local
    activity). The worker holding the key runs on a queue of its own with the workers' converter; the
    history keeps the sealed forms and the activity's answer, and replays where the key is not held (the
    replay tests hold none)."""
    from temporalio.worker import Worker

    from activities.sealing import KEY_FILE_ENV
    from starters.identity import sealed as seal_to_workers
    from tests.test_canary_workflow import FakeCluster
    from workers.codec import data_converter

    issuer, before = LocalIssuer().start(), os.environ.get(KEY_FILE_ENV)
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max_workers=4) as pool:
        key_file = Path(tmp) / "token-keys"
        key_file.write_text("recorded:" + base64.b64encode(X25519PrivateKey.generate().private_bytes_raw()).decode())
        os.environ[KEY_FILE_ENV] = str(key_file)
        try:
            keyed = Client(client.service_client, namespace=client.namespace, data_converter=data_converter())
            own = f"{queue}-keyed"
            async with Worker(keyed, task_queue=own, workflows=ALL_WORKFLOWS, activity_executor=pool, activities=[
                    *FakeCluster().activities(), *identity_activities()]):
                document = canary_document(name="recorded-sealed", environment="production", steps=[
                    {"setWeight": 20},
                    {"approval": {"approvers": ["group:release-managers"], "minApprovals": 2,
                                  "identity": {"issuer": issuer.url, "audience": "durable-rollouts:{rollout}",
                                               "groupsClaim": "groups"}}},
                    {"setWeight": 100}])
                handle = await start_workflow(client, parse_rollout(document), own, "alice@example.com")
                status = await eventually(lambda: _proof_asked(handle), what="an approval asking for ID tokens")
                def token(email: str) -> str:
                    return issuer.mint(f"durable-rollouts:{handle.id}", email=email, groups=["release-managers"],
                                       at=status.approval.opened_at.timestamp())

                await handle.execute_update("approve", ApproveRequest(
                    id_token=seal_to_workers(token("bob@example.com"), status.approval.identity),
                    comment="sealed by the CLI"))
                await handle.signal("approve", ApproveRequest(
                    id_token=seal_to_workers(token("carol@example.com"), status.approval.identity),
                    comment="sealed by the codec server"))
                await handle.result()
        finally:
            issuer.stop()
            if before is None:
                del os.environ[KEY_FILE_ENV]
            else:
                os.environ[KEY_FILE_ENV] = before
    return handle


async def _proof_asked(handle) -> RolloutStatus | None:
    status = await handle.query("status", result_type=RolloutStatus)
    return status if status.approval is not None and status.approval.identity is not None else None


async def blue_green_approved(client: Client, queue: str):
    document = canary_document(name="recorded-blue-green-approved", strategy={"blueGreen": {
        "activeService": "checkout-api", "previewService": "checkout-api-preview", "scaleDownDelaySeconds": 1,
        "approval": {"approvers": ["group:sre"], "instructions": "check the preview"}}})
    handle = await start_workflow(client, parse_rollout(document), queue, "recorder")
    await paused_at(handle, 1)
    await handle.signal("approve", ApproveRequest(by="carol"))
    await handle.result()
    return handle


def _cluster_fakes() -> list:
    from tests.test_canary_workflow import FakeCluster

    return FakeCluster().activities()


def _identity_fakes() -> list:
    return _cluster_fakes() + identity_activities()


# name, scenario, the fake activities (tests/record_histories.py records them)
SCENARIOS = [
    ("canary-verified-approval", verified, _identity_fakes),
    ("canary-sealed-vote", sealed, _cluster_fakes),  # its keyed worker has the identity activities
    ("canary-verified-folded", verified_folded, _identity_fakes),
    ("canary-starter-proven", starter_proven, _identity_fakes),
    ("canary-resume-refused", resume_refused, _identity_fakes),
]
