"""The App Store channel against a loopback stand-in of App Store Connect (devtools/localcluster/stores/appstore.py)
that checks every request and answer with openapi-core against Apple's OpenAPI 3.7.0 document and
keeps App Review and the phased release on the time-skipping server's clock: the real activities
(ES256 API tokens with PyJWT) under the staged-release workflow."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from temporalio.testing import ActivityEnvironment

from activities.analysis.web import WebProvider
from activities.targets.appstore import AppStoreActivities
from localcluster.stores.appstore import ISSUER, AppStoreStandIn, api_key
from models.approvals import AbortRequest, HaltRequest, PromoteRequest, ResumeRequest
from models.appstore import SCHEDULE
from models.documents import SpecError
from models.release import ReleaseInput
from models.status import Phase
from tests.helpers import skip_time
from tests.store_helpers import (
    HealthStandIn,
    assert_history_clean,
    key_body,
    killed_mid_phase,
    reaches,
    skipping_clock,
    store_release,
    store_worker,
)
from workflows.release import StagedRelease

APP = "1459876543"
WEEK = [{"percent": p, "bake": "1d"} for p in SCHEDULE[:-1]]


@pytest.fixture
async def apple(tmp_path, monkeypatch, time_skipping_env):
    key = tmp_path / "AuthKey_2X9R4HXF34.p8"
    key_id, public = api_key(key)
    store = AppStoreStandIn(key_id, public)
    store.clock = skipping_clock(time_skipping_env, asyncio.get_running_loop())
    store.start()
    monkeypatch.setenv("DURABLE_ROLLOUTS_APPSTORE_KEY_FILE", str(key))
    monkeypatch.setenv("DURABLE_ROLLOUTS_APPSTORE_KEY_ID", key_id)
    monkeypatch.setenv("DURABLE_ROLLOUTS_APPSTORE_ISSUER_ID", ISSUER)
    monkeypatch.setenv("DURABLE_ROLLOUTS_APPSTORE_API", store.url)
    store.add_build(APP, "3.1.0", "4121")
    store.add_released(APP, "3.0.2")  # not the app's first version: a phased release is possible
    yield store
    store.stop()


def apple_release(name: str, phases=WEEK, **spec):
    return store_release(name, {"appStore": {"appId": APP}}, {"version": "3.1.0", "build": "4121"}, phases, **spec)


def activities(extra: list | None = None) -> list:
    a = AppStoreActivities()
    return [a.prepare_version, a.submit_for_review, a.read_version, a.release_version, a.set_phased_release,
            *(extra or [])]


async def test_a_two_day_review_and_a_seven_day_phased_release_with_a_pause_run_in_seconds(
        time_skipping_env, apple, unique, tmp_path):
    env = time_skipping_env
    release = apple_release(f"ios-{unique}")
    queue = f"ios-{unique}"
    async with store_worker(env.client, queue, activities()):
        handle = await env.client.start_workflow(StagedRelease.run, ReleaseInput(release=release),
                                                 id=release.rollout_id, task_queue=queue)
        waiting = await reaches(handle, lambda s: s.reason == "InReview", "waiting for App Review")
        assert waiting.message.startswith("waiting for App Review since ") and "(WAITING_FOR_REVIEW)" in waiting.message
        assert apple.version("3.1.0").state == "WAITING_FOR_REVIEW" and apple.version("3.1.0").build

        await skip_time(env, timedelta(days=1))
        s = await reaches(handle, lambda s: s.reason == "InReview", "still in review")
        assert "(IN_REVIEW)" in s.message
        await skip_time(env, timedelta(days=3, hours=2))  # approved after 2 days; released; day 3 of the phases
        s = await reaches(handle, lambda s: s.current_step == 2 and s.reason == "Baking", "phase 3 (5%) baking")
        assert (s.exposure.desired, s.exposure.observed) == (5, 5)
        assert s.exposure.source == "Apple's phased release: ACTIVE, day 3"

        await handle.execute_update("halt", HaltRequest(by="oncall", comment="crash spike"))
        await reaches(handle, lambda s: s.reason == "Halted", "halted")
        assert apple.phased_of("3.1.0").state == "PAUSED"
        await skip_time(env, timedelta(days=4))  # paused: Apple's day stands still, and so does the bake
        s = await reaches(handle, lambda s: s.reason == "Halted", "still halted")
        assert s.current_step == 2
        await handle.execute_update("resume", ResumeRequest(by="oncall"))
        final = await handle.result()
        await assert_history_clean(handle, apple, key_body(next(tmp_path.glob("*.p8")).read_text()))
    assert final.phase is Phase.HEALTHY, final.message
    assert apple.phased_history[:2] == [("PAUSED", 3, 0), ("ACTIVE", 3, 4)]
    assert apple.phased_of("3.1.0").state == "COMPLETE"
    events = [e.event for e in final.history]
    assert events.index("submitted") < events.index("approved") < events.index("released")
    approved = next(e for e in final.history if e.event == "approved")
    assert approved.detail.startswith("App Review: PENDING_DEVELOPER_RELEASE after 2 days"), approved.detail
    resumed = [e.detail for e in final.history if e.event == "published" and "ACTIVE, day 3" in e.detail][-1]
    assert "paused 96h in total (measured" in resumed, "the pause measured by the workflow, not read from Apple"
    assert apple.violations == []


async def test_a_failed_gate_pauses_and_promote_full_completes_early(time_skipping_env, apple, unique):
    env = time_skipping_env
    health = HealthStandIn(crash_free=98.0)
    health.start()
    phases = [dict(p) for p in WEEK]
    phases[1]["analysis"] = {"templates": [{"templateName": "crash-free"}]}
    release = apple_release(f"ios-gate-{unique}", phases, analysis=health.gate(99.5), onFailure="halt")
    apple.review_seconds = 3600 * 5
    queue = f"ios-{unique}"
    try:
        async with store_worker(env.client, queue, activities(), {"web": WebProvider(httpx.Client())}):
            handle = await env.client.start_workflow(StagedRelease.run, ReleaseInput(release=release),
                                                     id=release.rollout_id, task_queue=queue)
            await skip_time(env, timedelta(days=2, hours=8))
            s = await reaches(handle, lambda s: s.reason == "Halted", "halted by the gate")
            assert s.current_step == 1 and apple.phased_of("3.1.0").state == "PAUSED"
            health.crash_free = 99.9
            await handle.execute_update("resume", ResumeRequest(by="release-manager"))
            await reaches(handle, lambda s: s.current_step == 2 and s.reason == "Baking", "phase 3 baking")
            await handle.execute_update("promote", PromoteRequest(by="release-manager", full=True))
            final = await handle.result()
    finally:
        health.stop()
    assert final.phase is Phase.HEALTHY, final.message
    assert [state for state, _, _ in apple.phased_history] == ["PAUSED", "ACTIVE", "COMPLETE"]
    assert apple.phased_history[-1][1] == 3, "completed early, on day 3"
    assert apple.violations == []


async def test_abort_during_review_publishes_nothing_and_a_rejection_fails(time_skipping_env, apple, unique):
    env = time_skipping_env
    queue = f"ios-{unique}"
    async with store_worker(env.client, queue, activities()):
        release = apple_release(f"ios-abort-{unique}")
        handle = await env.client.start_workflow(StagedRelease.run, ReleaseInput(release=release),
                                                 id=release.rollout_id, task_queue=queue)
        await reaches(handle, lambda s: s.reason == "InReview", "in review")
        await handle.execute_update("abort", AbortRequest(by="ci", reason="wrong build"))
        aborted = await handle.result()
        assert aborted.phase is Phase.DEGRADED and "nothing was published" in aborted.message
        assert "; version 3.1.0 (" in aborted.message and ") stays in App Store Connect (" in aborted.message \
            and "released only by hand there)" in aborted.message, aborted.message
        assert apple.phased_of("3.1.0").state == "INACTIVE"

        apple.add_build(APP, "3.2.0", "4200")
        apple.rejected.add("3.2.0")
        second = store_release(f"ios-reject-{unique}", {"appStore": {"appId": APP}}, {"version": "3.2.0", "build": "4200"},
                               WEEK)
        handle = await env.client.start_workflow(StagedRelease.run, ReleaseInput(release=second),
                                                 id=second.rollout_id, task_queue=queue)
        rejected = await handle.result()
    assert rejected.phase is Phase.DEGRADED and rejected.reason == "StoreRejected"
    assert "App Review: 3.2.0 (4200) is REJECTED" in rejected.message
    assert apple.violations == []


async def test_a_revoked_token_is_replaced_once_and_a_bad_key_fails_naming_the_store(
        time_skipping_env, apple, unique, monkeypatch, tmp_path):
    a = AppStoreActivities()
    apple.revoke_tokens()
    await asyncio.sleep(1.1)
    from models.appstore import AppStoreChannel, AppStoreVersionInput

    request = AppStoreVersionInput(channel=AppStoreChannel(app_id=APP), version="3.1.0", build="4121")
    state = await asyncio.to_thread(ActivityEnvironment().run, a.prepare_version, request)
    assert state.phased_state == "INACTIVE"
    old = a.api.tokens.token()
    await asyncio.sleep(1.1)  # the revocation cuts at whole seconds: the old token is older than it
    apple.revoke_tokens()
    await asyncio.sleep(1.1)
    await asyncio.to_thread(ActivityEnvironment().run, a.read_version, request)  # a 401, a fresh token, the answer
    assert a.api.tokens.token() != old
    assert sum(1 for r in apple.requests if r.path.endswith("/appStoreVersions")) >= 2

    api_key(tmp_path / "other.p8")  # a key Apple does not know
    monkeypatch.setenv("DURABLE_ROLLOUTS_APPSTORE_KEY_FILE", str(tmp_path / "other.p8"))
    with pytest.raises(Exception) as refused:
        await asyncio.to_thread(ActivityEnvironment().run, AppStoreActivities().read_version, request)
    assert refused.value.message == ("App Store Connect: appStoreVersions: 401 Provide a properly configured and "
                                     "signed bearer token: Signature verification failed (after a fresh token)")
    assert refused.value.non_retryable and refused.value.type == "StoreUnauthorized"
    assert apple.violations == []


@pytest.mark.parametrize(("change", "problem"), [
    (lambda p: p[2].update(percent=3), "spec.phases[2].percent: Apple's phased release has no 3% day (1, 2, 5, 10, "
                                       "20, 50% on days 1-6, everyone on day 7)"),
    (lambda p: p.pop(0), "spec.phases[0].percent: Apple's phased release starts at 1% (day 1)"),
    (lambda p: p[3].update(bake="2d"), "spec.phases[3].bake: Apple goes from 10% (day 4) to 20% (day 5) in 1d: "
                                       "bake 1d, not 2d"),
    (lambda p: p.pop(1), "spec.phases[0].bake: Apple goes from 1% (day 1) to 5% (day 3) in 2d: bake 2d, not 1d"),
])
def test_validation_refuses_phases_apple_cannot_honour(change, problem):
    phases = [dict(p) for p in WEEK]
    change(phases)
    with pytest.raises(SpecError) as error:
        apple_release("ios", phases)
    assert error.value.problems == [problem]


def test_rollout_validate_refuses_a_phase_off_apples_schedule(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    example = Path(__file__).resolve().parent.parent / "examples" / "releases" / "ios-appstore.yaml"
    document = yaml.safe_load(example.read_text())
    document["spec"]["phases"][2]["percent"] = 4
    bad = tmp_path / "ios.yaml"
    bad.write_text(yaml.safe_dump(document))
    done = subprocess.run([sys.executable, "-m", "starters.cli", "validate", "-f", str(bad)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"rollout: {bad}: spec.phases[2].percent: Apple's phased release has no 4% day "
                                   "(1, 2, 5, 10, 20, 50% on days 1-6, everyone on day 7)")


async def test_a_worker_killed_after_submitting_and_mid_phase_submits_once(
        dev_server, dev_client, apple, release_worker_processes, tmp_path, unique):
    apple.clock, apple.review_seconds = __import__("time").time, 2
    release = store_release(f"ios-kill-{unique}", {"appStore": {"appId": APP, "reviewPoll": "1s"}},
                            {"version": "3.1.0", "build": "4121"}, WEEK)
    final = await killed_mid_phase(dev_server, dev_client, release_worker_processes, tmp_path, release,
                                   f"ios-kill-{unique}", after="submit_app_store_review")
    assert final.phase is Phase.HEALTHY, final.message
    assert len(apple.submissions) == 1 and len(apple.calls("/v1/reviewSubmissionItems", "POST")) == 1
    assert len(apple.calls("/v1/appStoreVersionReleaseRequests", "POST")) == 1
    assert [state for state, _, _ in apple.phased_history] == ["COMPLETE"], "ACTIVE once (by the release), then done"
    assert apple.violations == []


async def test_the_first_version_of_an_app_is_refused_before_anything_is_created(apple):
    from temporalio.exceptions import ApplicationError

    from models.appstore import AppStoreChannel, AppStoreVersionInput

    apple.versions.clear()  # 3.1.0 would be the app's first version: Apple has no phased release for it
    request = AppStoreVersionInput(channel=AppStoreChannel(app_id=APP), version="3.1.0", build="4121")
    with pytest.raises(ApplicationError, match="not available for the first version of an app") as refused:
        await asyncio.to_thread(ActivityEnvironment().run, AppStoreActivities().prepare_version, request)
    assert refused.value.non_retryable
    assert apple.versions == {} and apple.phased == {}, "nothing created"
    apple.add_released(APP, "3.0.2", platform="MAC_OS")  # a release on another platform does not count
    with pytest.raises(ApplicationError, match="first version"):
        await asyncio.to_thread(ActivityEnvironment().run, AppStoreActivities().prepare_version, request)
    assert apple.violations == []


async def test_an_approved_version_apple_holds_is_released_only_once_it_is_pending_developer_release(
        time_skipping_env, apple, unique):
    env, queue = time_skipping_env, f"ios-held-{unique}"
    apple.accepted_seconds = 86_400.0  # approved, then a day ACCEPTED before it can be released
    release = apple_release(f"ios-held-{unique}")
    async with store_worker(env.client, queue, activities()):
        handle = await env.client.start_workflow(StagedRelease.run, ReleaseInput(release=release),
                                                 id=release.rollout_id, task_queue=queue)
        await skip_time(env, timedelta(days=2, hours=3))
        s = await reaches(handle, lambda s: "(ACCEPTED)" in s.message, "approved and held by Apple")
        assert s.reason == "InReview" and apple.calls("/v1/appStoreVersionReleaseRequests") == [], \
            "no release request while ACCEPTED (Apple refuses it)"
        await skip_time(env, timedelta(days=1))
        await reaches(handle, lambda s: s.reason == "Baking", "released and phase 1 baking")
        await handle.execute_update("promote", PromoteRequest(by="release-manager", full=True))
        final = await handle.result()
    assert final.phase is Phase.HEALTHY, final.message
    assert len(apple.calls("/v1/appStoreVersionReleaseRequests", "POST")) == 1 and apple.violations == []


async def test_tokens_leave_room_for_an_apple_clock_behind_the_workers(apple, tmp_path):
    import jwt

    from activities.targets.appstore.auth import AppleTokens
    from localcluster.stores.standin import Refusal, Request

    apple.skew = 240.0  # Apple's clock reads 4 minutes behind the worker's
    token = AppleTokens().token()
    apple.check_token(Request("GET", "/v1/builds", "", {"authorization": f"Bearer {token}"}, b""))
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 900
    twenty = jwt.encode({**claims, "exp": claims["iat"] + 1200}, next(tmp_path.glob("*.p8")).read_text(), "ES256",
                        headers={"kid": apple.key_id})
    with pytest.raises(Refusal, match="more than 20 minutes"):  # a 20-minute token, read 4 minutes behind
        apple.check_token(Request("GET", "/v1/builds", "", {"authorization": f"Bearer {twenty}"}, b""))


async def test_the_stand_in_refuses_attributes_and_query_parameters_apples_document_does_not_list(apple):
    from activities.targets.appstore.auth import AppleTokens

    headers = {"Authorization": f"Bearer {AppleTokens().token()}"}
    answer = httpx.get(f"{apple.url}/v1/apps/{APP}/appStoreVersions", headers=headers,
                       params={"filter[versionString]": "3.1.0", "filter[colour]": "red"})
    assert answer.status_code == 400 and "filter[colour]" in answer.text
    answer = httpx.post(f"{apple.url}/v1/appStoreVersions", headers=headers, json={"data": {
        "type": "appStoreVersions", "attributes": {"platform": "IOS", "versionString": "3.2.0", "phased": True},
        "relationships": {"app": {"data": {"type": "apps", "id": APP}}}}})
    assert answer.status_code == 400 and len(apple.violations) == 2, apple.violations


@pytest.mark.parametrize("state", ["PREPARE_FOR_SUBMISSION", "WAITING_FOR_REVIEW"])
async def test_a_version_made_to_release_itself_is_set_manual_or_refused(apple, state):
    """A version made in App Store Connect with AFTER_APPROVAL would be released by Apple, ungated: the
    channel sets it MANUAL while it can, and refuses it once it cannot."""
    from temporalio.exceptions import ApplicationError

    from models.appstore import AppStoreChannel, AppStoreVersionInput

    apple.add_version(APP, "3.1.0", "AFTER_APPROVAL", state)
    request = AppStoreVersionInput(channel=AppStoreChannel(app_id=APP), version="3.1.0", build="4121")
    if state == "PREPARE_FOR_SUBMISSION":
        await asyncio.to_thread(ActivityEnvironment().run, AppStoreActivities().prepare_version, request)
        assert apple.version("3.1.0").release_type == "MANUAL"
    else:
        with pytest.raises(ApplicationError, match="releases itself \\(AFTER_APPROVAL\\) and is [A-Z_]+: its release type can no longer change"):
            await asyncio.to_thread(ActivityEnvironment().run, AppStoreActivities().prepare_version, request)
        assert apple.phased == {}
    assert apple.violations == []
