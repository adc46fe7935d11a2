"""Verified approver identity on the dev server (its clock is the machine's, as the tokens' are): a local
OIDC issuer on loopback (discovery and JWKS over HTTP, tokens signed by its own RSA key), the real
key-fetching activity, the decision validators checking each token. A valid vote counts under the
name the token proves; expired, wrong audience, wrong issuer, tampered, replayed (on this rollout and
on another one), self-approval by token and a missing token are refused — by update with no history
event — and the tokens appear nowhere in the status."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from temporalio import activity
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, Worker

from activities.approvers import ApproverActivities
from activities.identity import IdentityActivities
from activities.sealing import KEY_FILE_ENV, public_key, seal
from localcluster.devserver import DevServer, free_port
from localcluster.issuer import LocalIssuer
from models.approvals import Approval, ApproveRequest, RejectRequest
from models.identity import KeysRequest, VoteProof, VoteToVerify, token_hash, verify_token
from models.spec import Rollout, parse_rollout
from models.status import ControlResult, Phase, RolloutInput, RolloutStatus
from tests import webui
from tests.helpers import canary_document, eventually, finished, sealed_start, token_key_file
from tests.test_approvals import accepted_updates, refused, status_of
from tests.test_canary_workflow import FakeCluster
from workers.codec import TOKEN_PUBLIC_KEY_ENV, CodecServer, server_codec
from workers.codec import data_converter as worker_converter
from workers.temporal import TemporalSettings, connect
from workflows.canary import CanaryRollout

AUDIENCE = "durable-rollouts:{rollout}"
MANAGERS = ["release-managers"]
REPO = Path(__file__).resolve().parent.parent


def identity_policy(issuer: LocalIssuer, min_approvals: int = 2, **extra) -> dict:
    return {"description": "promote to 100%", "approvers": ["group:release-managers"], "minApprovals": min_approvals,
            "forbidSelfApproval": True,
            "identity": {"issuer": issuer.url, "audience": AUDIENCE, "claim": "email", "groupsClaim": "groups",
                         **extra}}


@pytest.fixture
def issuer():
    server = LocalIssuer().start()
    yield server
    server.stop()


@pytest.fixture
async def verified_rollouts(dev_server, dev_client, unique, issuer, tmp_path, monkeypatch):
    """start(name, initiator) -> handle: canaries on a fake cluster whose step 2 needs verified votes. The
    worker holds an ID-token sealing key (its client's converter opens sealed tokens; its key-fetching
    activity advertises the public half)."""
    keys = tmp_path / "token-keys"
    keys.write_text("k1:" + base64.b64encode(X25519PrivateKey.generate().private_bytes_raw()).decode())
    monkeypatch.setenv(KEY_FILE_ENV, str(keys))
    worker_client = await connect(TemporalSettings(address=dev_server.address, namespace="default", ui=""))
    queue = f"identity-{unique}"
    http = httpx.Client()
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        worker = Worker(worker_client, task_queue=queue, workflows=[CanaryRollout], activity_executor=pool,
                        max_cached_workflows=0,
                        activities=[*FakeCluster().activities(), ApproverActivities().resolve_groups,
                                    IdentityActivities(http).fetch_signing_keys, IdentityActivities(http).verify_vote])
        async with worker:
            async def start(name: str, initiator: str = "alice@example.com", min_approvals: int = 2,
                            proven: str | None = None):
                return await start_verified(dev_client, f"{name}-{unique}", queue, issuer, min_approvals, initiator,
                                            proven)
            yield start
    http.close()


def verified_canary(issuer: LocalIssuer, name: str, min_approvals: int = 1, **document) -> Rollout:
    """A canary on a fake cluster whose step 2 counts only verified votes (and forbids self-approval)."""
    return parse_rollout(canary_document(name=name, environment="production", steps=[
        {"setWeight": 20}, {"approval": identity_policy(issuer, min_approvals)}, {"setWeight": 100}], **document))


async def start_verified(client, name: str, queue: str, issuer: LocalIssuer, min_approvals: int = 1,
                         initiator: str = "alice@example.com", proven: str | None = None, sealed: bool = True,
                         **start):
    """`verified_canary` started by `initiator` (as the CLI records it) with an ID token proving `proven`
    (default: the initiator), sealed for this start as the CLI seals it to the key this process's workers
    hold (unless not `sealed`); `start`: other fields of the input (`starter_token=""`: none)."""
    rollout = verified_canary(issuer, name, min_approvals)
    token = start.pop("starter_token", None)
    if token is None:
        token = issuer.mint(f"durable-rollouts:{rollout.rollout_id}", email=proven or initiator)
    if sealed and token and not token.startswith("sealed:"):
        token = sealed_start(token, rollout)
    return await client.start_workflow(
        CanaryRollout.run, RolloutInput(rollout=rollout, requested_by=initiator, starter_token=token, **start),
        id=rollout.rollout_id, task_queue=queue)


async def open_approval(handle) -> RolloutStatus:
    async def check():
        s = await status_of(handle)
        return s if s.approval is not None and s.approval.identity is not None else None
    return await eventually(check, timeout=30, what="an approval that wants verified votes")


async def test_only_votes_proven_by_a_valid_token_count(verified_rollouts, issuer):
    handle, other = await verified_rollouts("pay"), await verified_rollouts("ledger")
    status = await open_approval(handle)
    await open_approval(other)
    audience = f"durable-rollouts:{handle.id}"
    assert (status.approval.identity.issuer, status.approval.identity.audience) == (issuer.url, audience)
    assert status.approval.eligible == []  # group membership comes from the tokens' groups claim

    def token(email: str, **options) -> str:
        return issuer.mint(options.pop("audience", audience), email=email, groups=options.pop("groups", MANAGERS),
                           **options)

    bob = token("bob@example.com")
    refusals = {
        "no token": ApproveRequest(by="bob@example.com"),
        "expired": ApproveRequest(id_token=token("bob@example.com", lifetime=60, issued_ago=600)),
        "wrong audience": ApproveRequest(id_token=token("bob@example.com", audience="durable-rollouts:other")),
        "wrong issuer": ApproveRequest(id_token=token("bob@example.com", issuer="https://login.evil.example")),
        "tampered": ApproveRequest(id_token=issuer.forge(bob, email="carol@example.com")),
        "not a JWT": ApproveRequest(id_token="not-a-token"),
        "self-approval": ApproveRequest(id_token=token("alice@example.com")),
        "not in the group": ApproveRequest(id_token=token("mallory@example.com", groups=["interns"])),
        # bob's token sealed to the workers' key, its readable claims swapped for carol's: does not open
        "altered after sealing": ApproveRequest(id_token=seal(bob, status.approval.identity.seal_key).replace(
            bob.split(".")[1], token("carol@example.com").split(".")[1])),
    }
    why = {what: await refused(handle, "approve", request) for what, request in refusals.items()}
    assert why == {
        "no token": f"InvalidDecision: step 2 counts only votes proven by an ID token from {issuer.url} "
                    "(rollout approve --id-token-file; the Web UI: \"idToken\")",
        "expired": why["expired"], "not a JWT": why["not a JWT"],
        "wrong audience": f"InvalidDecision: approve: the ID token is not for this rollout (its audience must be "
                          f"'{audience}')",
        "wrong issuer": f"InvalidDecision: approve: the ID token was not issued by {issuer.url}",
        "tampered": "InvalidDecision: approve: the ID token's signature does not verify with "
                    f"{issuer.url}'s key key-1",
        "self-approval": "InvalidDecision: alice@example.com started this rollout and cannot approve it "
                         "(forbidSelfApproval)",
        "not in the group": "InvalidDecision: mallory@example.com is not an approver of step 2 "
                            "(approvers: group:release-managers)",
        "altered after sealing": "InvalidDecision: approve: the ID token is sealed to a key this worker does "
                                 "not hold (or was altered after sealing)",
    }
    assert why["expired"].startswith("InvalidDecision: approve: the ID token expired at ")
    assert why["not a JWT"].startswith("InvalidDecision: approve: the ID token is not a JWT")

    counted = await handle.execute_update("approve", ApproveRequest(by="typed-name", id_token=bob, comment="green"),
                                          result_type=ControlResult)
    assert counted.message == "promote: 1 of 2 approvals"
    replayed = await refused(handle, "approve", ApproveRequest(id_token=bob))
    assert replayed == "InvalidDecision: approve: this ID token has already been used on this rollout (a token counts once)"
    elsewhere = await refused(other, "reject", RejectRequest(id_token=bob, comment="replayed"))
    assert elsewhere.startswith("InvalidDecision: reject: the ID token is not for this rollout")
    assert await accepted_updates(handle) == ["approve"] and await accepted_updates(other) == []

    # The Web UI's door: a signal with the token pasted as idToken, checked by the same rules.
    carol = token("carol@example.com")
    await handle.signal("approve", ApproveRequest(id_token=issuer.forge(carol, groups=["release-managers", "x"])))
    await handle.signal("approve", ApproveRequest(id_token=carol, comment="from the UI"))
    final = await finished(handle, 60)
    assert final.phase is Phase.HEALTHY
    votes = [(d.by, d.source, d.accepted, d.verified, d.token_sha256) for d in final.decisions]
    assert votes == [("bob@example.com", "cli", True, True, token_hash(bob)),
                     ("(unverified)", "web-ui", False, False, ""),
                     ("carol@example.com", "web-ui", True, True, token_hash(carol))]
    assert "signature does not verify" in final.decisions[1].why
    everything = final.model_dump_json() + (await status_of(other)).model_dump_json()
    for request in [*refusals.values(), ApproveRequest(id_token=bob), ApproveRequest(id_token=carol)]:
        assert not request.id_token or request.id_token not in everything
    await other.terminate("test over")


def test_an_unbound_audience_takes_only_young_tokens(issuer):
    """A token whose audience does not name the rollout (a plain client ID) must be younger than
    maxTokenAge; an unverified email and an unknown signing key are refused (the validator's function)."""
    policy = Approval.model_validate(identity_policy(issuer, audience="checkout-approvals", maxTokenAge="5m")).identity
    assert policy is not None and not policy.bound
    keys = IdentityActivities(httpx.Client()).fetch_signing_keys(KeysRequest(issuer=issuer.url))
    assert keys.jwks_uri == f"{issuer.url}/jwks" and all("d" not in k for k in keys.keys)  # public members only
    now, rid = datetime.now(UTC), "rollout/production/pay"
    young = issuer.mint("checkout-approvals", email="bob@example.com", lifetime=3600)
    old = issuer.mint("checkout-approvals", email="bob@example.com", lifetime=3600, issued_ago=900)
    unverified = issuer.mint("checkout-approvals", email="bob@example.com", email_verified=False)
    assert verify_token(young, policy, rid, keys, now, set()).name == "bob@example.com"
    assert "longer ago than maxTokenAge allows" in verify_token(old, policy, rid, keys, now, set())
    assert "email bob@example.com is not marked verified" in verify_token(unverified, policy, rid, keys, now, set())
    issuer.rotate()  # a token signed with a key published after the fetch
    rotated = issuer.mint("checkout-approvals", email="bob@example.com")
    assert "kid='key-2' is not among" in verify_token(rotated, policy, rid, keys, now, set())
    fresh = IdentityActivities(httpx.Client()).fetch_signing_keys(KeysRequest(issuer=issuer.url))
    assert verify_token(rotated, policy, rid, fresh, now, set()).name == "bob@example.com"


async def test_verified_votes_from_the_cli_a_ci_job_and_the_web_ui(dev_server, verified_rollouts, issuer, tmp_path):
    """3 verified votes: a person's token from a file (`rollout approve --id-token-file`), a CI job's OIDC
    token requested by the CLI for the approval's audience (GitHub Actions' variables, the local
    issuer's token endpoint), and a token pasted into the Web UI's approve signal."""
    handle = await verified_rollouts("shop", min_approvals=3)
    await open_approval(handle)
    audience = f"durable-rollouts:{handle.id}"
    env = {k: v for k, v in os.environ.items()  # the CLI holds no sealing key: the workers do
           if not k.startswith(("ROLLOUT_", "ACTIONS_", "GITHUB_")) and k != KEY_FILE_ENV}
    env.update(TEMPORAL_ADDRESS=dev_server.address, ROLLOUT_USER="someone")

    async def cli(*args: str, **extra: str) -> subprocess.CompletedProcess:
        result = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "starters.cli", *args], cwd=REPO,
                                         env={**env, **extra}, capture_output=True, text=True, timeout=120)
        assert "Traceback" not in result.stderr, result.stderr
        return result

    none = await cli("approve", handle.id)
    assert none.returncode == 2 and f"counts only votes proven by an ID token from {issuer.url}" in none.stderr
    stale = tmp_path / "stale.jwt"
    stale.write_text(issuer.mint(audience, email="bob@example.com", groups=MANAGERS, lifetime=60, issued_ago=600))
    expired = await cli("approve", handle.id, "--id-token-file", str(stale))
    assert expired.returncode == 2 and "approve: the ID token expired at" in expired.stderr
    person = tmp_path / "bob.jwt"
    person.write_text(issuer.mint(audience, email="bob@example.com", groups=MANAGERS) + "\n")
    voted = await cli("approve", handle.id, "--id-token-file", str(person), "--comment", "dashboard green")
    assert voted.returncode == 0 and "promote: 1 of 3 approvals" in voted.stdout, voted.stderr

    issuer.ci_claims = {"sub": "repo:example/shop:environment:production", "email": "ci-bot@example.com",
                        "groups": MANAGERS}
    bot = await cli("approve", handle.id, "--comment", "smoke tests passed", **issuer.github_env())
    assert bot.returncode == 0 and "promote: 2 of 3 approvals" in bot.stdout, bot.stderr
    view = (await cli("status", handle.id)).stdout
    assert f"proof      ID token from {issuer.url}, audience {audience}" in view
    assert "bob@example.com ✓, ci-bot@example.com ✓" in view, view

    carol = issuer.mint(audience, email="carol@example.com", groups=MANAGERS, lifetime=600)

    def approve_in_the_ui() -> str:
        with webui.browser_page() as page:
            webui.open_rollout(page, dev_server.ui_url, handle.id)
            details = webui.current_details(page)
            webui.send_signal(page, "approve", json.dumps({"idToken": carol, "comment": "from the UI"}))
            return details

    details = await asyncio.to_thread(approve_in_the_ui)
    assert f"Votes count only with an ID token from {issuer.url}" in details and '"idToken"' in details, details
    final = await finished(handle, 60)
    assert final.phase is Phase.HEALTHY
    assert [(d.by, d.source, d.verified) for d in final.decisions] == [
        ("bob@example.com", "cli", True), ("ci-bot@example.com", "cli", True), ("carol@example.com", "web-ui", True)]
    history = (await cli("history", handle.id)).stdout
    assert "ci-bot@example.com" in history and "smoke tests passed" in history
    recorded = await handle.fetch_history()
    stored = b"".join(e.SerializeToString() for e in recorded.events)  # payloads as stored
    signature = person.read_text().strip().rpartition(".")[2].encode()
    assert signature not in stored, "the CLI's tokens reach the history sealed: no signature, no credential"
    assert f"sealed:v2:k1:{token_hash(person.read_text())}:".encode() in stored

    # Replayed where the token key is not held (a worker of another family, a key rotated away): the
    # accepted votes read their claims and hashes from what stays readable; and where it is held.
    for converter in (pydantic_data_converter, worker_converter()):
        replayed = await Replayer(workflows=[CanaryRollout], data_converter=converter).replay_workflow(
            recorded, raise_on_replay_failure=False)
        assert replayed.replay_failure is None, replayed.replay_failure



async def test_a_token_typed_into_the_web_ui_reaches_the_history_sealed(issuer, tmp_path, monkeypatch, unique):
    """The Web UI sends a signal's input through `rollout codec-server`'s /encode (a dev server started
    with --ui-codec-endpoint); the codec server seals the idToken to the workers' public key, the worker
    opens it, the verify_vote local activity checks it: the vote counts, and the history holds the sealed
    form and the activity's answer — no signature — and replays where the key is not held."""
    private = X25519PrivateKey.generate()
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    monkeypatch.setenv(TOKEN_PUBLIC_KEY_ENV, public_key({"ui": private}))
    configured = server_codec()  # the codec server holds only the public half
    assert configured is not None and configured[1] == "ID tokens sealed to ui"
    keys = tmp_path / "token-keys"
    keys.write_text("ui:" + base64.b64encode(private.private_bytes_raw()).decode())
    monkeypatch.setenv(KEY_FILE_ENV, str(keys))  # the worker holds the private half
    ui_port = free_port()
    codec = CodecServer(configured[0], origins=[f"http://localhost:{ui_port}"]).start()
    server = DevServer(db_file=tmp_path / "ui.db", port=free_port(), ui_port=ui_port, ui_codec_endpoint=codec.url,
                       log_file=tmp_path / "server.log").start()
    try:
        client = await connect(TemporalSettings(address=server.address, namespace="default", ui=""))
        http, queue = httpx.Client(), f"ui-sealed-{unique}"
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            identity = IdentityActivities(http)
            async with Worker(client, task_queue=queue, workflows=[CanaryRollout], activity_executor=pool,
                              activities=[*FakeCluster().activities(), identity.fetch_signing_keys,
                                          identity.verify_vote]):
                handle = await start_verified(client, f"till-{unique}", queue, issuer)
                await open_approval(handle)
                carol = issuer.mint(f"durable-rollouts:{handle.id}", email="carol@example.com", groups=MANAGERS)

                def approve_in_the_ui() -> None:
                    with webui.browser_page() as page:
                        webui.open_rollout(page, server.ui_url, handle.id)
                        webui.send_signal(page, "approve", json.dumps({"idToken": carol, "comment": "typed in"}))

                await asyncio.to_thread(approve_in_the_ui)
                final = await finished(handle, 60)
        http.close()
        assert final.phase is Phase.HEALTHY
        assert [(d.by, d.source, d.verified, d.token_sha256) for d in final.decisions] == [
            ("carol@example.com", "web-ui", True, token_hash(carol))]
        recorded = await handle.fetch_history()
        stored = b"".join(e.SerializeToString() for e in recorded.events)
        assert carol.rpartition(".")[2].encode() not in stored, "the token typed into the UI reaches the history sealed"
        assert f"sealed:v2:ui:{token_hash(carol)}:".encode() in stored
        replayed = await Replayer(workflows=[CanaryRollout], data_converter=pydantic_data_converter).replay_workflow(
            recorded, raise_on_replay_failure=False)
        assert replayed.replay_failure is None, replayed.replay_failure
    finally:
        server.stop()
        codec.stop()


async def test_a_vote_whose_token_cannot_be_checked_is_refused_not_fatal(dev_server, dev_client, unique, issuer,
                                                                        tmp_path, monkeypatch):
    """The verify_vote activity failing (here: for every vote; the start's token it checks) refuses the
    signal's vote with the reason; the rollout keeps waiting and a vote by update still decides it."""
    monkeypatch.setenv(KEY_FILE_ENV, token_key_file(tmp_path))  # a start's token is sealed to the workers' key
    client = await connect(TemporalSettings(address=dev_server.address, namespace="default", ui=""))
    queue, http = f"broken-{unique}", httpx.Client()

    @activity.defn(name="verify_vote")
    def broken(vote: VoteToVerify) -> VoteProof:
        if vote.start:
            return IdentityActivities(http).verify_vote(vote)
        raise RuntimeError("the verifier is broken")

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        async with Worker(client, task_queue=queue, workflows=[CanaryRollout], activity_executor=pool,
                          activities=[*FakeCluster().activities(), IdentityActivities(http).fetch_signing_keys, broken]):
            handle = await start_verified(dev_client, f"kiosk-{unique}", queue, issuer)
            await open_approval(handle)
            audience = f"durable-rollouts:{handle.id}"
            await handle.signal("approve", ApproveRequest(id_token=issuer.mint(audience, email="carol@example.com",
                                                                               groups=MANAGERS)))
            refusal = await eventually(lambda: _refused_signal(handle), timeout=30, what="the signal's vote refused")
            assert refusal.startswith("approve: the ID token could not be checked (") and "broken" in refusal, refusal
            assert (await status_of(handle)).phase is Phase.PAUSED
            await handle.execute_update("approve", ApproveRequest(id_token=issuer.mint(
                audience, email="bob@example.com", groups=MANAGERS)), result_type=ControlResult)
            final = await finished(handle, 60)
    http.close()
    assert final.phase is Phase.HEALTHY
    assert [(d.by, d.accepted) for d in final.decisions] == [("(unverified)", False), ("bob@example.com", True)]


async def _refused_signal(handle) -> str | None:
    refused_ = [d.why for d in (await status_of(handle)).decisions if d.source == "web-ui" and not d.accepted]
    return refused_[0] if refused_ else None
