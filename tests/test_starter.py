"""Who started a rollout, proven (models/starter.py): under an approval that forbids self-approval and
counts only votes proven by an ID token, the start carries a token of the same issuer and audience and
the name it proves is the initiator — not what the CLI recorded (`$ROLLOUT_USER`, anyone can set it).
A start without a valid one, one that claims a pipeline's proof without being a child, and one that
hands in a `resume` change nothing; the starter's token cannot vote; the CLI seals it to the workers' key
and refuses to send it in clear; approvals asking for two identities are refused in the document."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from activities.approvers import ApproverActivities
from activities.identity import IdentityActivities
from activities.sealing import KEY_FILE_ENV, private_keys, public_key, seal
from localcluster.updates import make_artifact
from models.approvals import ApproveRequest
from models.identity import USED
from models.spec import parse_rollout
from models.starter import start_purpose
from models.status import ControlResult, Phase, Resume, RolloutStatus
from models.train import SubmitRelease, SubmitResult, TrainInput, TrainStatus, train_id
from tests.helpers import (
    canary_document,
    eventually,
    finished,
    sealed_start,
    server_time,
    started_status,
    token_key_file,
)
from tests.release_helpers import release_document, release_worker
from tests.test_approvals import refused, status_of
from tests.test_canary_workflow import FakeCluster
from tests.test_identity import (  # noqa: F401 - issuer: a fixture
    MANAGERS,
    identity_policy,
    issuer,
    open_approval,
    start_verified,
    verified_canary,
)
from workers.codec import TOKEN_PUBLIC_KEY_ENV
from workers.temporal import TemporalSettings, connect
from workflows.canary import CanaryRollout
from workflows.train import ReleaseTrain

REPO = Path(__file__).resolve().parent.parent
GUARDED = "spec.strategy.canary.steps[1].approval forbids self-approval under identity"


@pytest.fixture
async def keyed_worker(dev_server, unique, tmp_path, monkeypatch):
    """(task queue, the workers' public token key): a worker holding a token-sealing key, running canaries
    on a fake cluster with the identity activities."""
    keys = tmp_path / "token-keys"
    keys.write_text("k1:" + base64.b64encode(X25519PrivateKey.generate().private_bytes_raw()).decode())
    monkeypatch.setenv(KEY_FILE_ENV, str(keys))
    client = await connect(TemporalSettings(address=dev_server.address, namespace="default", ui=""))
    queue, http = f"starter-{unique}", httpx.Client()
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        async with Worker(client, task_queue=queue, workflows=[CanaryRollout], activity_executor=pool,
                          max_cached_workflows=0,
                          activities=[*FakeCluster().activities(), ApproverActivities().resolve_groups,
                                      IdentityActivities(http).fetch_signing_keys,
                                      IdentityActivities(http).verify_vote]):
            yield queue, public_key(private_keys())
    http.close()


async def test_the_proven_starter_is_the_initiator_not_the_name_the_cli_recorded(dev_client, keyed_worker, issuer,
                                                                                 unique):
    queue, _ = keyed_worker
    handle = await start_verified(dev_client, f"pay-{unique}", queue, issuer, 2, initiator="mallory@example.com",
                                  proven="alice@example.com")  # $ROLLOUT_USER says mallory; alice's token says alice
    status = await open_approval(handle)
    assert (status.started_by, status.initiator, status.initiator_proven) == (
        "mallory@example.com", "alice@example.com", True)
    assert any(h.event == "starter-proven" and h.by == "alice@example.com" for h in status.history)
    audience = f"durable-rollouts:{handle.id}"

    def token(email: str) -> str:
        return issuer.mint(audience, email=email, groups=MANAGERS)

    assert "alice@example.com started this rollout and cannot approve it" in await refused(
        handle, "approve", ApproveRequest(id_token=token("alice@example.com")))
    assert "started this rollout" in await refused(handle, "approve", ApproveRequest(id_token=token("ALICE@example.com")))
    await handle.execute_update("approve", ApproveRequest(id_token=token("mallory@example.com")),
                                result_type=ControlResult)  # not the starter, whatever the CLI recorded
    await handle.execute_update("approve", ApproveRequest(id_token=token("bob@example.com")), result_type=ControlResult)
    final = await finished(handle, 60)
    assert final.phase is Phase.HEALTHY and final.initiator == "alice@example.com"
    assert [v.by for v in final.decisions if v.accepted] == ["mallory@example.com", "bob@example.com"]


async def test_the_starters_token_cannot_vote(dev_client, keyed_worker, issuer, unique):
    queue, public = keyed_worker
    rid = f"rollout/production/vote-{unique}"
    starter = issuer.mint(f"durable-rollouts:{rid}", email="carol@example.com", groups=MANAGERS, lifetime=600)
    handle = await start_verified(dev_client, f"vote-{unique}", queue, issuer, 1, initiator="alice@example.com",
                                  starter_token=starter)
    status = await open_approval(handle)
    assert status.initiator == "carol@example.com" and status.initiator_token_key
    assert await refused(handle, "approve", ApproveRequest(id_token=starter)) == f"InvalidDecision: approve: {USED}"
    assert "sealed to a key this worker does not hold" in await refused(  # sealed for a start, sent as a vote
        handle, "approve", ApproveRequest(id_token=sealed_start(starter, verified_canary(issuer, f"vote-{unique}"))))
    await handle.terminate("test over")


@pytest.mark.parametrize("case", ["no token", "claims a pipeline's proof", "another rollout's token", "expired",
                                  "minted long before", "forged", "a sealed vote", "another document's start",
                                  "in clear", "hands in a resume"])
async def test_an_unproven_start_changes_nothing(dev_client, keyed_worker, issuer, unique, case):
    queue, public = keyed_worker
    name = f"bare-{unique}"
    rid = f"rollout/production/{name}"
    alice = issuer.mint(f"durable-rollouts:{rid}", email="alice@example.com")
    start = {
        "no token": {"starter_token": ""},
        "claims a pipeline's proof": {"starter_token": "", "initiator_proven": True},
        "another rollout's token": {"starter_token": issuer.mint("durable-rollouts:rollout/production/other",
                                                            email="alice@example.com")},
        "expired": {"starter_token": issuer.mint(f"durable-rollouts:{rid}", email="alice@example.com", lifetime=60,
                                            issued_ago=900)},
        "minted long before": {"starter_token": issuer.mint(f"durable-rollouts:{rid}", email="alice@example.com",
                                                            lifetime=3600, issued_ago=900)},
        "forged": {"starter_token": issuer.forge(alice, email="mallory@example.com")},
        "a sealed vote": {"starter_token": seal(alice, public)},  # copied from a history: sealed for a vote
        # Bob's start of this rollout ID, read from its history, sent with Mallory's changed spec:
        "another document's start": {"starter_token": seal(alice, public, start_purpose(verified_canary(
            issuer, name, 1, image="registry.local/checkout-api:9.9.9")))},
        "in clear": {"starter_token": alice, "sealed": False},  # the workers hold a key: a token in clear could
        # have been read from a history (a vote sent in clear, a keyless worker's start)
        "hands in a resume": {"resume": Resume(step=2, status=RolloutStatus(  # past the approval, as if approved
            rollout_id=rid, name=name, environment="production", strategy="canary", target="web", image="web:2",
            current_step=2))},
    }[case]
    handle = await start_verified(dev_client, name, queue, issuer, 1, initiator="alice@example.com", **start)
    final = await finished(handle, 60)
    assert final.phase is Phase.DEGRADED and final.reason == "InvalidStart", final.message
    assert final.message.endswith("(nothing was changed)") and final.canary_weight == 0, final.message
    assert not final.initiator_proven and not final.initiator_token_key
    expected = {"no token": f"{GUARDED}: the start must be proven by an ID token from {issuer.url}",
                "claims a pipeline's proof": GUARDED,
                "another rollout's token": "the ID token is not for this rollout",
                "expired": "the ID token expired at",
                "minted long before": "longer ago than maxTokenAge allows",
                "a sealed vote": "not sealed for this very document to a key this worker holds",
                "another document's start": "not sealed for this very document to a key this worker holds",
                "in clear": "the starter's ID token came in clear",
                "forged": "signature does not verify",
                "hands in a resume": "resume is set by a rollout when it continues as new"}[case]
    assert expected in final.message, final.message


async def test_the_cli_proves_the_start_with_a_sealed_token(dev_server, keyed_worker, issuer, unique, tmp_path):
    queue, public = keyed_worker
    name = f"shop-{unique}"
    rid = f"rollout/production/{name}"
    spec = tmp_path / "shop.yaml"
    spec.write_text(yaml.safe_dump(canary_document(name=name, environment="production", steps=[
        {"setWeight": 20}, {"approval": identity_policy(issuer, 1)}, {"setWeight": 100}])))
    alice = issuer.mint(f"durable-rollouts:{rid}", email="alice@example.com")
    env = {k: v for k, v in os.environ.items()  # the CLI holds no sealing key: the workers do
           if not k.startswith(("ROLLOUT_", "ACTIONS_", "GITHUB_")) and k not in (KEY_FILE_ENV, TOKEN_PUBLIC_KEY_ENV)}
    env.update(TEMPORAL_ADDRESS=dev_server.address, ROLLOUT_USER="mallory", ROLLOUT_TASK_QUEUE=queue)

    async def cli(*args: str, **extra: str) -> subprocess.CompletedProcess:
        result = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "starters.cli", *args], cwd=REPO,
                                         env={**env, **extra}, capture_output=True, text=True, timeout=120)
        assert "Traceback" not in result.stderr, result.stderr
        return result

    clear = await cli("start", "-f", str(spec), ROLLOUT_ID_TOKEN=alice)
    assert clear.returncode == 2 and f"set ${TOKEN_PUBLIC_KEY_ENV}" in clear.stderr, clear.stderr
    assert len(clear.stderr.strip().splitlines()) == 1
    bad = await cli("start", "-f", str(spec), ROLLOUT_ID_TOKEN=alice, **{TOKEN_PUBLIC_KEY_ENV: "k1:not-a-key!"})
    assert bad.returncode == 2 and "is not `id:base64` of 32 bytes" in bad.stderr, bad.stderr
    ci = issuer.mint(f"durable-rollouts:{rid}", email="ci-bot@example.com", issuer="https://token.actions.example")
    other = await cli("start", "-f", str(spec), ROLLOUT_ID_TOKEN=ci, **{TOKEN_PUBLIC_KEY_ENV: public})
    assert other.returncode == 2 and f"asks for an ID token from {issuer.url}; this one is from " \
        "'https://token.actions.example'" in other.stderr, other.stderr
    none = await cli("start", "-f", str(spec), **{TOKEN_PUBLIC_KEY_ENV: public})
    assert none.returncode == 2 and f"{GUARDED}: the start must be proven by an ID token from {issuer.url}" \
        in none.stderr, none.stderr
    token_file = tmp_path / "alice.jwt"
    token_file.write_text(alice + "\n")
    started = await cli("start", "-f", str(spec), "--id-token-file", str(token_file), **{TOKEN_PUBLIC_KEY_ENV: public})
    assert started.returncode == 0, started.stderr
    handle = (await connect(TemporalSettings(address=dev_server.address, namespace="default", ui=""))
              ).get_workflow_handle(rid, result_type=RolloutStatus)
    status = await eventually(lambda: _proven(handle), timeout=30, what="the starter proven")
    assert (status.started_by, status.initiator) == ("mallory", "alice@example.com")
    stored = b"".join(e.SerializeToString() for e in (await handle.fetch_history()).events)
    assert alice.rpartition(".")[2].encode() not in stored, "the start's token reaches the history sealed"
    assert b"sealed:v2:k1:" in stored
    await handle.terminate("test over")


async def _proven(handle) -> RolloutStatus | None:
    status = await status_of(handle)
    return status if status.initiator_proven else None


def test_approvals_asking_for_two_identities_are_refused(issuer, tmp_path):
    other = {**identity_policy(issuer, 1), "identity": {**identity_policy(issuer, 1)["identity"], "claim": "sub"}}
    spec = tmp_path / "two.yaml"
    spec.write_text(yaml.safe_dump(canary_document(name="two", environment="production", steps=[
        {"approval": identity_policy(issuer, 1)}, {"setWeight": 50}, {"approval": other}, {"setWeight": 100}])))
    result = subprocess.run([sys.executable, "-m", "starters.cli", "validate", "-f", str(spec)], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert ("spec.strategy.canary.steps[2].approval.identity: approvals that forbid self-approval must ask for "
            "one identity") in result.stderr, result.stderr
    # The rule is the loader's (documents read now), not the model's: a running rollout's input read back
    # from its history still parses, and its run refuses the start (workflows/starter.py).
    assert len(parse_rollout(yaml.safe_load(spec.read_text())).spec.approvals()) == 2


async def test_a_release_train_proves_who_submits(time_skipping_env, s3_server, updater_setup, issuer, unique,
                                                  tmp_path, monkeypatch):
    """A release whose approval forbids self-approval under identity goes on a train only with the submitter's
    ID token (checked by the train's update); the release runs as the train's child with the proven name."""
    keys = tmp_path / "keys"  # not beside the artifacts: the worker reads no artifact next to its keys
    keys.mkdir()
    monkeypatch.setenv(KEY_FILE_ENV, token_key_file(keys))  # the in-process worker's token key
    client = time_skipping_env.client
    guarded = {"percent": 50, "approval": identity_policy(issuer, 1)}
    release = release_document(f"guarded-{unique}", updater_setup, make_artifact(tmp_path, "2.0.0"), "2.0.0",
                               [guarded, {"percent": 100}])
    queue, http = f"train-{unique}", httpx.Client()
    identity = IdentityActivities(http)
    async with release_worker(client, queue, s3_server, updater_setup,
                              extra=[identity.fetch_signing_keys, identity.verify_vote]):
        train = await client.start_workflow(
            ReleaseTrain.run, TrainInput(name=f"guarded-{unique}", environment="test"),
            id=train_id("test", f"guarded-{unique}"), task_queue=queue)

        async def submitted(token: str) -> str:
            with pytest.raises(WorkflowUpdateFailedError) as refusal:
                await train.execute_update("submit", SubmitRelease(release=release, by="mallory", starter_token=token))
            return str(refusal.value.cause)

        assert ("spec.phases[0].approval forbids self-approval under identity: the submitter must be proven by an "
                f"ID token from {issuer.url}") in await submitted("")
        audience = f"durable-rollouts:{release.rollout_id}"
        alice = issuer.mint(audience, email="alice@example.com", at=await server_time(client))
        assert "signature does not verify" in await submitted(
            sealed_start(issuer.forge(alice, email="mallory@example.com"), release))
        assert "came in clear" in await submitted(alice)
        other = release_document(f"guarded-{unique}", updater_setup, make_artifact(tmp_path, "2.0.1"), "2.0.1",
                                 [guarded, {"percent": 100}])
        assert "not sealed for this very document" in await submitted(sealed_start(alice, other))
        await train.signal("submit", SubmitRelease(release=release, by="alice",  # the Web UI's door
                                                   starter_token=sealed_start(alice, release)))
        plain = release_document(f"plain-{unique}", updater_setup, make_artifact(tmp_path, "2.0.2"), "2.0.2",
                                 [{"percent": 100}])
        await train.signal("submit", SubmitRelease(release=plain, by="alice"))  # needs no proof: queued

        async def ran():
            s = await train.query("status", result_type=TrainStatus)
            return s if s.running or s.results else None

        first = await eventually(ran, timeout=60, what="the train's first release")
        assert (first.running or first.results[0].workflow_id) == f"{plain.rollout_id}/1", \
            "the guarded release sent by signal was not queued; the plain one after it was"
        queued = await train.execute_update("submit", SubmitRelease(
            release=release, by="mallory", starter_token=sealed_start(alice, release)), result_type=SubmitResult)
        child = client.get_workflow_handle(queued.workflow_id)

        async def waiting():
            s = await started_status(child)  # not started yet: the plain release runs first (run 35 asked too early)
            if s is None:
                return None
            assert s.phase.value in ("Progressing", "Paused"), f"the release ended: {s.phase.value} {s.reason} {s.message}"
            return s if s.approval is not None and s.approval.identity is not None else None

        status = await eventually(waiting, timeout=60, what="the train's release at its approval")
        assert (status.started_by, status.initiator, status.initiator_proven) == (
            f"train guarded-{unique}", "alice@example.com", True)
        assert (await child.describe()).status == WorkflowExecutionStatus.RUNNING
        await child.terminate("test over")
        await train.terminate("test over")
    http.close()
