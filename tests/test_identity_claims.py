"""Approver identity against a captured token and a careless issuer: a used token sent again in another
text (its signature re-padded, an ECDSA signature's twin) counts no more than the original, by update, by
signal and after the rollout continued as new behind a flood of refused signals; a token issued before
the approval opened, claims of the wrong type, an audience list naming others, a token from the future,
an email not marked verified and keys offered over plain http are refused; self-approval compares names
as people write them (ASCII case, a login name with its email); a policy that lets any token holder vote
is refused in a document, while a running pipeline's input that has one still reads."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

import workflows.continuation
from activities.approvers import ApproverActivities
from activities.identity import IdentityActivities
from activities.sealing import KEY_FILE_ENV
from localcluster.issuer import LocalIssuer
from models.approvals import Approval, ApproveRequest, names_match
from models.documents import SpecError
from models.identity import USED, KeysRequest, SigningKeys, verify_token
from models.pipeline import PipelineInput, parse_pipeline
from models.spec import Rollout, parse_rollout
from models.status import ControlResult, Phase, RolloutInput
from tests.helpers import canary_document, eventually, finished, past_reopening, sealed_start, token_key_file
from tests.test_approvals import refused, status_of
from tests.test_canary_workflow import FakeCluster
from tests.test_identity import MANAGERS, identity_policy, issuer, open_approval, verified_rollouts  # noqa: F401
from workers.temporal import TemporalSettings, connect
from workflows.canary import CanaryRollout

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
RID = "rollout/production/pay"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def padded(token: str) -> str:
    """The same token with its signature segment base64-padded: PyJWT decodes it, the text differs."""
    head, body, signature = token.split(".")
    assert len(signature) % 4, "an RS256-2048 signature's segment is not a multiple of 4 long"
    return f"{head}.{body}.{signature}{'=' * (-len(signature) % 4)}"


def checked(issuer: LocalIssuer, **policy):
    identity = Approval.model_validate(identity_policy(issuer, **policy)).identity
    keys = IdentityActivities(httpx.Client()).fetch_signing_keys(KeysRequest(issuer=issuer.url))
    return identity, keys, identity.audience_for(RID), datetime.now(UTC)


def test_a_used_token_in_another_text_is_still_used(issuer):  # noqa: F811
    policy, keys, audience, now = checked(issuer)
    bob = issuer.mint(audience, email="bob@example.com")
    first = verify_token(bob, policy, RID, keys, now, set())
    used = {first.token_sha256, first.token_key}
    again = padded(bob)
    assert verify_token(again, policy, RID, keys, now, set()).name == "bob@example.com", "the padded text verifies"
    assert verify_token(again, policy, RID, keys, now, used) == USED
    assert verify_token(again, policy, RID, keys, now, {first.token_sha256}, legacy=True) != USED, \
        "keyed on the text alone (runs recorded before) the padded token would count again"

    # ES256: (r, s) and (r, n - s) both verify; the twin carries the same claims.
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key())), "kid": "ec-1", "use": "sig"}
    ec_keys = SigningKeys(issuer=issuer.url, jwks_uri=f"{issuer.url}/jwks", keys=[jwk], fetched_at=now)
    claims = {"iss": issuer.url, "aud": audience, "sub": "carol", "email": "carol@example.com",
              "email_verified": True, "iat": int(now.timestamp()), "exp": int(now.timestamp()) + 300}
    token = jwt.encode(claims, key, algorithm="ES256", headers={"kid": "ec-1"})
    head, body, signature = token.split(".")
    raw = unb64(signature)
    twin = f"{head}.{body}.{b64(raw[:32] + (P256_ORDER - int.from_bytes(raw[32:])).to_bytes(32))}"
    original = verify_token(token, policy, RID, ec_keys, now, set())
    assert twin != token and verify_token(twin, policy, RID, ec_keys, now, set()).name == "carol@example.com"
    assert verify_token(twin, policy, RID, ec_keys, now, {original.token_sha256, original.token_key}) == USED
    carol_again = jwt.encode({**claims, "nonce": "n-2"}, key, algorithm="ES256", headers={"kid": "ec-1"})
    assert verify_token(carol_again, policy, RID, ec_keys, now, {original.token_key}).name == "carol@example.com", \
        "another token of the same person in the same second is another token"

    opened = now + timedelta(minutes=5)  # an approval that opened after bob's token was issued
    assert "before this approval opened" in verify_token(bob, policy, RID, keys, opened, set(), opened_at=opened)
    assert verify_token(bob, policy, RID, keys, now, set(), opened_at=now).name == "bob@example.com"


def test_claims_are_held_to_their_types(issuer):  # noqa: F811
    policy, keys, audience, now = checked(issuer)

    def problem(**claims) -> str:
        email = claims.pop("email", "bob@example.com")
        answer = verify_token(issuer.mint(claims.pop("aud", audience), email=email, **claims), policy, RID, keys,
                              now, set())
        return answer if isinstance(answer, str) else ""

    assert problem() == "" and problem(aud=[audience]) == ""
    assert "names other audiences" in problem(aud=[audience, "https://other.example"])
    assert "not valid before" in problem(issued_ago=-3600, lifetime=7200)  # no nbf: not before its iat
    assert "in the future" in problem(issued_ago=-3600, lifetime=7200, nbf=int(now.timestamp()) - 10)
    assert "not a number of seconds" in problem(exp=str(int(now.timestamp()) + 300))
    assert "not a number of seconds" in problem(iat=True)
    assert "not a number of seconds" in problem(nbf="0")
    assert "email_verified must be true" in problem(email_verified="true")
    unverified = issuer.mint(audience, sub="bob", email="bob@example.com", email_checked=False)
    assert "email_verified must be true" in verify_token(unverified, policy, RID, keys, now, set())
    assert verify_token(unverified, policy, RID, keys, now, set(), legacy=True).name == "bob@example.com", \
        "a run recorded before replays with the checks it was recorded with"
    by_subject = Approval.model_validate(identity_policy(issuer, claim="sub")).identity
    assert verify_token(unverified, by_subject, RID, keys, now, set()).name == "bob"


def test_keys_offered_over_plain_http_are_refused():
    """Discovery over https naming a JWKS on http (not loopback): every vote would be checked with keys a
    network attacker could swap."""
    def issuer_site(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/.well-known/openid-configuration", f"fetched {request.url}"
        return httpx.Response(200, json={"issuer": "https://login.example.com",
                                         "jwks_uri": "http://keys.example.com/jwks"})

    activities = IdentityActivities(httpx.Client(transport=httpx.MockTransport(issuer_site)))
    with pytest.raises(ApplicationError) as refusal:
        activities.fetch_signing_keys(KeysRequest(issuer="https://login.example.com"))
    assert refusal.value.non_retryable and "jwks_uri: 'http://keys.example.com/jwks' must be an https:// URL" in str(
        refusal.value)


def test_a_policy_any_token_holder_could_satisfy_is_refused_in_a_document(issuer):  # noqa: F811
    approval = {**identity_policy(issuer), "approvers": []}
    document = canary_document(name="open", steps=[{"setWeight": 20}, {"approval": approval}, {"setWeight": 100}])
    with pytest.raises(SpecError) as refusal:
        parse_rollout(document)
    assert "spec.strategy.canary.steps[1].approval.approvers: an approval that requires an ID token must name " \
           "who may vote" in str(refusal.value)
    assert Rollout.model_validate(document).spec.strategy.canary.steps[1].approval.identity is not None, \
        "a running rollout's input, read back from its history, still reads"
    template = {**document, "metadata": {"name": "web", "environment": "test"}}
    pipeline = {"apiVersion": "rollouts.durable.dev/v1alpha1", "kind": "Pipeline",
                "metadata": {"name": "open", "environment": "test"},
                "spec": {"bundle": {"images": {"web": "registry.local/web:2.0.0"}},
                         "stages": [{"name": "prod", "rollout": template, "waves": [{"targets": [{"context": "eu-1"}]}]}]}}
    with pytest.raises(SpecError) as refusal:
        parse_pipeline(pipeline)
    assert "approvers: an approval that requires an ID token must name who may vote" in str(refusal.value)
    running = PipelineInput.model_validate({"pipeline": pipeline, "requestedBy": "ci"})  # as its history has it
    assert running.pipeline.spec.stages[0].template().spec.strategy.canary.steps[1].approval.approvers == []


def test_names_compare_as_people_write_them():
    assert names_match("Alice@Example.COM", "alice@example.com") and names_match("alice", "alice@example.com")
    assert not names_match("alice@a.example", "alice@b.example"), "two domains, two people"
    assert not names_match("strasse@corp.example", "straße@corp.example"), "no Unicode folding"
    assert not names_match("kate@corp.example", "\u212aate@corp.example"), "the Kelvin sign is not a K"
    assert names_match("Alice@bücher.example", "alice@bücher.example"), "A-Z fold in any name"
    assert names_match("Bob@x.example", "bob@x.example", member=True)
    assert not names_match("alice", "alice@example.com", member=True), "the approvers list matches whole names"
    assert not names_match("Bob@x.example", "bob@x.example", member=True, emails=False), "a sub is case-sensitive"


async def test_self_approval_and_a_second_vote_compare_names_as_people_write_them(verified_rollouts, issuer):  # noqa: F811
    handle = await verified_rollouts("cases", initiator="Alice@Example.COM")
    login = await verified_rollouts("login", initiator="alice", proven="alice@example.com")  # recorded: the login
    await open_approval(handle)
    await open_approval(login)
    audience = f"durable-rollouts:{handle.id}"

    def token(email: str, to: str = audience) -> str:
        return issuer.mint(to, email=email, groups=MANAGERS)

    assert "started this rollout and cannot approve it" in await refused(
        handle, "approve", ApproveRequest(id_token=token("alice@example.com")))
    assert "started this rollout and cannot approve it" in await refused(
        login, "approve", ApproveRequest(id_token=token("alice@example.com", f"durable-rollouts:{login.id}")))
    await login.terminate("test over")
    bob = token("bob@example.com")
    await handle.execute_update("approve", ApproveRequest(id_token=bob), result_type=ControlResult)
    assert await refused(handle, "approve", ApproveRequest(id_token=padded(bob))) == f"InvalidDecision: approve: {USED}"
    assert "has already voted" in await refused(handle, "approve", ApproveRequest(id_token=token("BOB@example.com")))
    await handle.signal("approve", ApproveRequest(id_token=padded(bob)))  # the Web UI's door: the same rules
    await handle.signal("approve", ApproveRequest(id_token=token("BOB@example.com")))
    why = await eventually(lambda: _refusals(handle, 2), timeout=30, what="the signals' votes refused")
    assert why[0] == f"approve: {USED}" and why[1].startswith("BOB@example.com has already voted"), why
    assert (await status_of(handle)).approval.votes[0].by == "bob@example.com"
    await handle.terminate("test over")


async def _refusals(handle, count: int) -> list[str] | None:
    refusals = [d.why for d in (await status_of(handle)).decisions if d.source == "web-ui" and not d.accepted]
    return refusals if len(refusals) >= count else None


async def test_a_used_token_stays_used_after_the_rollout_continues_as_new(dev_server, dev_client, unique, issuer,  # noqa: F811
                                                                         monkeypatch, tmp_path):
    """Two verified approvals; between them refused signals grow the history until the rollout continues
    as new, and (the kept entries lowered to 2) push the first vote out of the newest decisions: its token
    is still used."""
    monkeypatch.setattr(workflows.continuation, "KEPT_HISTORY_ENTRIES", 2)  # the unsandboxed worker reads this
    monkeypatch.setenv(KEY_FILE_ENV, token_key_file(tmp_path))  # a start's token is sealed to the workers' key
    client = await connect(TemporalSettings(address=dev_server.address, namespace="default", ui=""))
    queue, http = f"kept-{unique}", httpx.Client()
    approval = identity_policy(issuer, min_approvals=1)
    rollout = parse_rollout(canary_document(name=f"kept-{unique}", environment="production", steps=[
        {"setWeight": 20}, {"approval": approval}, {"approval": approval}, {"setWeight": 100}]))
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        async with Worker(client, task_queue=queue, workflows=[CanaryRollout], activity_executor=pool,
                          workflow_runner=UnsandboxedWorkflowRunner(), max_cached_workflows=0,
                          activities=[*FakeCluster().activities(), ApproverActivities().resolve_groups,
                                      IdentityActivities(http).fetch_signing_keys, IdentityActivities(http).verify_vote]):
            handle = await dev_client.start_workflow(
                CanaryRollout.run, RolloutInput(rollout=rollout, requested_by="alice@example.com",
                                                continue_after_events=50, starter_token=sealed_start(issuer.mint(
                                                    f"durable-rollouts:{rollout.rollout_id}",
                                                    email="alice@example.com"), rollout)),
                id=f"rollout/production/kept-{unique}", task_queue=queue)
            await open_approval(handle)
            bob = issuer.mint(f"durable-rollouts:{handle.id}", email="bob@example.com", groups=MANAGERS, lifetime=600)
            dave = issuer.mint(f"durable-rollouts:{handle.id}", email="dave@example.com", groups=MANAGERS, lifetime=600,
                               issued_ago=60)  # held back from an earlier approval
            await handle.execute_update("approve", ApproveRequest(id_token=bob), result_type=ControlResult)

            async def second_open():
                s = await status_of(handle)
                return s if s.approval is not None and s.approval.step == 2 and s.approval.identity else None

            await eventually(second_open, timeout=30, what="the second approval")
            for n in range(20):  # each refused (no token), recorded, and adding events
                await handle.signal("approve", ApproveRequest(by=f"someone-{n}"))
            continued = await eventually(lambda: _continued(handle), timeout=30, what="a new run")
            assert [d.by for d in continued.decisions if d.accepted] == ["bob@example.com"], "kept: the used token"
            assert await _refused_reopened(handle, bob) == f"InvalidDecision: approve: {USED}"
            assert "before this approval opened" in await _refused_reopened(handle, dave)
            carol = issuer.mint(f"durable-rollouts:{handle.id}", email="carol@example.com", groups=MANAGERS)
            await past_reopening(lambda: handle.execute_update("approve", ApproveRequest(id_token=carol),
                                                               result_type=ControlResult))
            final = await finished(handle, 60)
    http.close()
    assert final.phase is Phase.HEALTHY and final.runs >= 2
    assert [d.by for d in final.decisions if d.accepted] == ["bob@example.com", "carol@example.com"]
    assert len([d for d in final.decisions if not d.accepted]) < 21, "refused signals were trimmed at the hand-over"
    assert all(d.token_expires and d.token_expires - d.at <= timedelta(minutes=10, seconds=30)
               for d in final.decisions if d.accepted)


async def _continued(handle):
    s = await status_of(handle)
    return s if s.runs >= 2 and s.approval is not None and s.approval.identity is not None else None


async def _refused_reopened(handle, token: str) -> str:
    """A vote's refusal, sent again while the rollout says its approval is being re-opened in a new run (the
    signals carried over can make it continue more than once; run 32 met a vote sent in between)."""
    for _ in range(50):
        why = await refused(handle, "approve", ApproveRequest(id_token=token))
        if "being re-opened" not in why:
            return why
        await asyncio.sleep(0.2)
    return why
