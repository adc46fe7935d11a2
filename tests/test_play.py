"""The Google Play channel against a loopback stand-in of Play (devtools/localcluster/stores/play.py) that
checks every request against Google's discovery documents in ../shared/specs/google and keeps Play's
state machine: the real activities (google-auth service-account sign-in, resumable bundle upload,
edits and tracks) under the staged-release workflow on the time-skipping server."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest

from activities.analysis.playvitals import PlayVitalsSource
from activities.targets.play import PlayActivities
from localcluster.faults import read_journal
from localcluster.stores.play import PlayStandIn, make_bundle, service_account
from models.approvals import AbortRequest, HaltRequest, PromoteRequest, ResumeRequest
from models.release import ReleaseInput
from models.status import Phase
from tests.helpers import eventually, skip_time
from tests.store_helpers import assert_history_clean, key_body, reaches, status, store_release, store_worker
from workflows.release import StagedRelease

PACKAGE = "com.example.shop"
PHASES = [{"percent": 1, "bake": "1d"}, {"percent": 5, "bake": "1d"}, {"percent": 20, "bake": "1d"},
          {"percent": 50, "bake": "2d"}]
CRASH_GATE = {"templates": [{"name": "play-crashes", "args": [{"name": "versionCode"}], "metrics": [{
    "name": "crash-rate", "successCondition": "result['release'] <= result['baseline'] * 1.5",
    "provider": {"playVitals": {"packageName": PACKAGE, "versionCode": "{{args.versionCode}}",
                                "baselineVersionCode": "100"}}}]}]}


@pytest.fixture
def play(tmp_path, monkeypatch):
    """The stand-in with the app on version code 100, and the worker's environment pointing at it."""
    store = PlayStandIn()
    store.start()
    (tmp_path / "secrets").mkdir()  # not beside the artifacts: the worker refuses an artifact next to a key
    key = tmp_path / "secrets" / "play-service-account.json"
    store.public_key = service_account(key, f"{store.url}/token")
    monkeypatch.setenv("DURABLE_ROLLOUTS_PLAY_CREDENTIALS", str(key))
    monkeypatch.setenv("DURABLE_ROLLOUTS_PLAY_API", store.url)
    monkeypatch.setenv("DURABLE_ROLLOUTS_PLAY_REPORTING_API", store.url)
    store.seed(PACKAGE, 100)
    yield store
    store.stop()


def play_release(name: str, bundle, phases=PHASES, **spec):
    return store_release(name, {"googlePlay": {"packageName": PACKAGE, "releaseNotes": {"en-US": "Faster checkout"}}},
                         {"file": str(bundle), "version": "2.0.0"}, phases, **spec)


def activities() -> list:
    play = PlayActivities()
    return [play.upload_bundle, play.set_track, play.read_track]


async def test_a_staged_release_raises_the_user_fraction_to_completed(time_skipping_env, play, tmp_path, unique):
    bundle = make_bundle(tmp_path / "app.aab", 101, size=3_000_000)
    release = play_release(f"play-{unique}", bundle)
    queue = f"play-{unique}"
    async with store_worker(time_skipping_env.client, queue, activities()):
        handle = await time_skipping_env.client.start_workflow(
            StagedRelease.run, ReleaseInput(release=release), id=release.rollout_id, task_queue=queue)
        final = await handle.result()
        key = json.loads((tmp_path / "secrets" / "play-service-account.json").read_text())["private_key"]
        await assert_history_clean(handle, play, key_body(key))
    assert final.phase is Phase.HEALTHY, final.message
    old, new = (100,), (101,)
    assert play.track_history(PACKAGE) == [
        [("completed", None, old), ("draft", None, new)],  # the upload's commit: on the track, served to nobody
        [("completed", None, old), ("inProgress", 0.01, new)],
        [("completed", None, old), ("inProgress", 0.05, new)],
        [("completed", None, old), ("inProgress", 0.2, new)],
        [("completed", None, old), ("inProgress", 0.5, new)],
        [("completed", None, new)],
    ]
    assert play.uploads == [101] and play.received == bundle.stat().st_size, "uploaded once, each byte once"
    assert play.violations == []
    assert len(play.calls("/tracks/production", "PUT")) == 1 + 5, "the draft in the upload's edit, then each phase"
    assert play.app(PACKAGE).commits == 6, "upload and track in one edit"
    release_notes = play.track(PACKAGE, "production")[0]["releaseNotes"]
    assert release_notes == [{"language": "en-US", "text": "Faster checkout"}]
    assert final.exposure.desired == 100 and final.exposure.observed == 100
    assert final.stable_image == "version code 100"


async def test_a_crash_rate_gate_halts_the_release_and_resume_goes_on_from_the_same_fraction(
        time_skipping_env, play, tmp_path, unique):
    bundle = make_bundle(tmp_path / "app.aab", 101)
    phases = [{"percent": 1, "bake": "1d"},
              {"percent": 10, "bake": "1d", "analysis": {"templates": [{"templateName": "play-crashes"}],
                                                         "args": [{"name": "versionCode", "value": "101"}]}},
              {"percent": 50, "bake": "1d"}]
    release = play_release(f"play-gate-{unique}", bundle, phases, analysis=CRASH_GATE, onFailure="halt")
    play.vitals[PACKAGE] = {100: {"crashRate": 0.010, "distinctUsers": 90_000},
                            101: {"crashRate": 0.031, "distinctUsers": 9_000}}
    queue = f"play-{unique}"
    async with store_worker(time_skipping_env.client, queue, activities(), {"playVitals": PlayVitalsSource()}):
        handle = await time_skipping_env.client.start_workflow(
            StagedRelease.run, ReleaseInput(release=release), id=release.rollout_id, task_queue=queue)
        await skip_time(time_skipping_env, timedelta(days=2, hours=1))  # both bakes, then the gate
        halted = await reaches(handle, lambda s: s.reason == "Halted", "halted by the crash-rate gate")
        assert halted.current_step == 1
        assert play.track(PACKAGE, "production")[-1] == {
            "versionCodes": ["101"], "name": "2.0.0", "status": "halted", "userFraction": 0.1,
            "releaseNotes": [{"language": "en-US", "text": "Faster checkout"}]}
        measured = json.loads(halted.analysis[0].measurements[-1].value)
        assert measured == {"release": 0.031, "baseline": 0.01}

        await skip_time(time_skipping_env, timedelta(days=3))  # halted: nothing moves
        assert play.track(PACKAGE, "production")[-1]["status"] == "halted"
        play.vitals[PACKAGE][101]["crashRate"] = 0.011  # the fix is server-side
        await handle.execute_update("resume", ResumeRequest(by="oncall"))
        final = await handle.result()
    assert final.phase is Phase.HEALTHY, final.message
    history = play.track_history(PACKAGE)
    fractions = [next((r[0], r[1]) for r in shape if r[2] == (101,)) for shape in history[1:]]
    assert fractions[:3] == [("inProgress", 0.01), ("inProgress", 0.1), ("halted", 0.1)]
    # resumed past the failed gate: the next phase (the resume itself may land first, at the same fraction)
    assert [f for f in fractions[3:] if f != ("inProgress", 0.1)] == [("inProgress", 0.5), ("completed", None)]
    assert play.violations == []


async def test_abort_halts_and_a_halt_is_never_completed_directly(time_skipping_env, play, tmp_path, unique):
    bundle = make_bundle(tmp_path / "app.aab", 101)
    release = play_release(f"play-abort-{unique}", bundle)
    queue = f"play-{unique}"
    async with store_worker(time_skipping_env.client, queue, activities()):
        handle = await time_skipping_env.client.start_workflow(
            StagedRelease.run, ReleaseInput(release=release), id=release.rollout_id, task_queue=queue)
        await skip_time(time_skipping_env, timedelta(days=1, hours=1))
        await reaches(handle, lambda s: s.current_step == 1 and s.reason == "Baking", "phase 2 baking")
        await handle.execute_update("halt", HaltRequest(by="oncall", comment="reviews"))
        await reaches(handle, lambda s: s.reason == "Halted", "halted")
        assert play.track(PACKAGE, "production")[-1]["status"] == "halted"
        await handle.execute_update("resume", ResumeRequest(by="oncall"))  # mid-bake: the same fraction again
        await reaches(handle, lambda s: s.reason == "Baking", "baking again")
        await eventually(lambda: [(r["status"], r.get("userFraction")) for r in play.track(PACKAGE, "production")] == [
            ("completed", None), ("inProgress", 0.05)], what="resumed on Play at 5%")
        await handle.execute_update("halt", HaltRequest(by="oncall", comment="reviews again"))
        await reaches(handle, lambda s: s.reason == "Halted", "halted")
        await handle.execute_update("abort", AbortRequest(by="oncall", reason="bad reviews"))
        final = await handle.result()
    assert final.phase is Phase.DEGRADED and final.reason == "RolloutAborted"
    assert "halted on Play at 5%" in final.message
    assert [(r["status"], r.get("userFraction")) for r in play.track(PACKAGE, "production")] == [
        ("completed", None), ("halted", 0.05)]
    # Play's rule, kept by the stand-in: a halted release is not completed without resuming it first.
    activity = PlayActivities()
    edit = activity.api.insert_edit(PACKAGE)
    with pytest.raises(Exception, match="cannot be completed: resume it first"):
        activity.api.update_track(PACKAGE, edit, "production", [{"status": "completed", "versionCodes": ["101"]}])
    assert play.violations == []


async def test_throttling_an_expired_token_and_a_refusal(time_skipping_env, play, tmp_path, unique):
    """429/503 wait for Retry-After, a revoked token is refreshed once, and Play's own 4xx message ends
    the release without a retry (a version code already used by another bundle)."""
    bundle = make_bundle(tmp_path / "app.aab", 101)
    release = play_release(f"play-errors-{unique}", bundle, [{"percent": 10, "bake": "1h"}])
    queue = f"play-{unique}"
    play.inject(429, times=1, match="/tracks/production", retry_after=1)
    play.inject(503, times=1, match=":commit", retry_after=1)
    async with store_worker(time_skipping_env.client, queue, activities()):
        handle = await time_skipping_env.client.start_workflow(
            StagedRelease.run, ReleaseInput(release=release), id=release.rollout_id, task_queue=queue)
        await reaches(handle, lambda s: s.reason == "Baking", "baking at 10%")
        play.revoke_tokens()
        final = await handle.result()
        assert final.phase is Phase.HEALTHY, final.message
        assert [f.times for f in play.faults] == [0, 0], "the 429 and the 503 were met, and waited out"
        tokens = play.calls("/token")
        assert len(tokens) == 2, "signed in once, and once more after the token was revoked"

        sent_before = len([r for r in play.calls("/bundles", "PUT") if r.body])
        clash = make_bundle(tmp_path / "clash.aab", 100)  # another bundle claiming Play's version code 100
        second = play_release(f"play-clash-{unique}", clash)
        handle = await time_skipping_env.client.start_workflow(
            StagedRelease.run, ReleaseInput(release=second), id=second.rollout_id, task_queue=queue)
        refused = await handle.result()
    assert refused.phase is Phase.DEGRADED and refused.reason == "StoreRejected"
    assert refused.message == ("Google Play: edits.bundles.upload: 403 APK specifies a version code that has "
                               "already been used: 100. (nothing was published)")
    upload_attempts = [r for r in play.calls("/bundles", "PUT") if r.body]
    assert len(upload_attempts) == sent_before + 1, "a refusal is not retried"
    assert play.violations == []


def test_the_contract_refuses_what_the_discovery_document_does_not_allow(play):
    """The stand-in's check is real: a misspelt field, a wrong enum value and an unknown parameter are
    answered with a 400 naming them, and kept as violations."""
    token = play.issue_token()
    headers = {"Authorization": f"Bearer {token}"}
    base = f"{play.url}/androidpublisher/v3/applications/{PACKAGE}/edits"
    edit = httpx.post(base, json={}, headers=headers).json()["id"]
    bad = [({"track": "production", "releases": [{"status": "paused", "versionCodes": ["100"]}]},
            "Track.releases.0.status: 'paused' is not one of"),
           ({"track": "production", "releases": [{"status": "inProgress", "fraction": 0.1}]},
            "'fraction' was unexpected"),
           ({"track": "production", "releases": [{"status": "completed", "versionCodes": [100]}]},
            "Track.releases.0.versionCodes.0: 100 is not of type 'string'")]
    for body, words in bad:
        answer = httpx.put(f"{base}/{edit}/tracks/production", json=body, headers=headers)
        assert answer.status_code == 400 and words in answer.json()["error"]["message"]
    answer = httpx.post(f"{base}/{edit}:commit", params={"notReally": "1"}, headers=headers)
    assert answer.status_code == 400 and "unknown query parameter 'notReally'" in answer.text
    assert len(play.violations) == 4


async def test_a_worker_killed_mid_upload_and_mid_phase_sends_no_byte_twice(
        dev_server, dev_client, play, release_worker_processes, tmp_path, unique):
    """SIGKILL 1.5 s into the upload (a slow link: each 1 MiB chunk takes 0.4 s): the next worker asks
    the session how far it got and sends the rest. Then SIGKILL while phase 1 bakes: the next worker
    goes on from the same fraction, nothing published twice."""
    play.chunk_delay = 0.4
    bundle = make_bundle(tmp_path / "app.aab", 101, size=6 * 1024 * 1024)
    journal, plan = tmp_path / "kills.jsonl", tmp_path / "plan.json"
    plan.write_text(json.dumps({"journal": str(journal), "points": [
        {"when": "during", "activities": ["upload_play_bundle"], "seconds": 1.5}]}))
    env = {"DURABLE_ROLLOUTS_KILL_PLAN": str(plan), "ROLLOUT_USER": "ci"}
    queue = f"play-kill-{unique}"
    worker = release_worker_processes(dev_server.address, queue, env=env)
    release = play_release(f"play-kill-{unique}", bundle, [{"percent": 2, "bake": "1h"}, {"percent": 10, "bake": "1h"}])
    handle = await dev_client.start_workflow(StagedRelease.run, ReleaseInput(release=release),
                                             id=f"{release.rollout_id}-{unique}", task_queue=queue)
    await eventually(worker.exited, timeout=60, what="the worker killed mid-upload")
    assert read_journal(journal)[0]["activity"] == "upload_play_bundle"
    assert 0 < play.received < bundle.stat().st_size, "killed with part of the bundle sent"
    assert play.uploads == []

    worker = release_worker_processes(dev_server.address, queue, env=env)  # the journal says: killed once
    await reaches(handle, lambda s: s.reason == "Baking" and s.current_step == 0, "phase 1 baking", timeout=90)
    assert play.uploads == [101] and play.received == bundle.stat().st_size, "each byte sent once"
    assert [r for r in play.calls("/bundles", "PUT") if r.headers.get("content-range", "").startswith("bytes */")], \
        "the second worker asked the session how far the first had got"

    worker.kill()
    release_worker_processes(dev_server.address, queue, env=env)
    await reaches(handle, lambda s: s.reason == "Baking" and s.current_step == 0, "phase 1, on the new worker",
                  timeout=90)  # a query replays it on the new worker before the promote (see test_crash)
    await handle.execute_update("promote", PromoteRequest(by="ci"))
    await reaches(handle, lambda s: s.reason == "Baking" and s.current_step == 1, "phase 2 baking", timeout=90)
    await handle.execute_update("promote", PromoteRequest(by="ci", full=True))
    final = await handle.result()
    assert final.phase is Phase.HEALTHY, final.message
    assert [[r[:2] for r in shape if r[2] == (101,)] for shape in play.track_history(PACKAGE)[1:]] == [
        [("inProgress", 0.02)], [("inProgress", 0.1)], [("completed", None)]]
    assert play.violations == []


async def test_changes_play_will_not_send_for_review_stop_the_release_and_unsent_changes_serve_nobody(
        time_skipping_env, play, tmp_path, unique):
    """Play's documented way past "cannot be sent for review automatically" (changesNotSentForReview=true)
    commits changes no user receives: the stand-in serves them only once sent for review, and the channel
    never takes that way — the release stops before anything is published, saying what to do."""
    play.needs_manual_review.add(PACKAGE)
    bundle = make_bundle(tmp_path / "app.aab", 101)
    release = store_release(f"play-review-{unique}", {"googlePlay": {"packageName": PACKAGE}},
                            {"file": str(bundle), "version": "2.0.0"}, [{"percent": 10, "bake": "1h"}])
    queue = f"play-{unique}"
    async with store_worker(time_skipping_env.client, queue, activities()):
        handle = await time_skipping_env.client.start_workflow(
            StagedRelease.run, ReleaseInput(release=release), id=release.rollout_id, task_queue=queue)
        final = await handle.result()
    assert final.phase is Phase.DEGRADED and "(nothing was published)" in final.message, final.message
    assert "Play will not send this change for review automatically: send the app's pending changes for review " \
           "in the Play Console" in final.message
    assert play.unsent == [] and play.app(PACKAGE).commits == 0
    api = PlayActivities().api
    edit = api.insert_edit(PACKAGE)
    api.update_track(PACKAGE, edit, "production", [{"status": "completed", "versionCodes": ["100"]},
                                                   {"status": "draft", "versionCodes": ["100"], "name": "x"}])
    api.api.call("POST", f"androidpublisher/v3/applications/{PACKAGE}/edits/{edit}:commit", "commit",
                 params={"changesNotSentForReview": "true"})
    assert len(play.track(PACKAGE, "production")) == 1, "committed unsent: not served"
    play.send_for_review(PACKAGE)
    assert len(play.track(PACKAGE, "production")) == 2, "served once sent for review"
    assert play.violations == []


def test_a_token_works_only_for_its_scope_and_chunks_are_256_kib_multiples(play, tmp_path):
    from activities.targets.play.api import PlayApi
    from activities.targets.play.auth import REPORTING_SCOPE, GoogleTokens
    from activities.targets.storeapi import StoreApi

    reporting = GoogleTokens(REPORTING_SCOPE, "Play Developer Reporting").token()
    answer = httpx.post(f"{play.url}/androidpublisher/v3/applications/{PACKAGE}/edits", json={},
                        headers={"Authorization": f"Bearer {reporting}"})
    assert answer.status_code == 403 and "insufficient authentication scopes" in answer.text
    api = PlayApi()
    edit = api.insert_edit(PACKAGE)
    session = api.start_upload(PACKAGE, edit, 1_000_000)
    odd = httpx.put(session, content=b"x" * 300_000, headers={"Content-Range": "bytes 0-299999/1000000",
                                                             "Authorization": f"Bearer {api.api.tokens.token()}"})
    assert odd.status_code == 400 and "not a multiple of 256 KiB" in odd.text
    assert len(play.violations) == 1 and isinstance(api.api, StoreApi)


def test_vitals_are_read_in_los_angeles_days_up_to_plays_freshness_and_every_page(play):
    from activities.analysis import EmptyResult
    from models.analysis import Metric

    play.vitals[PACKAGE] = {100: {"crashRate": 0.010, "distinctUsers": 90_000},
                            101: {"crashRate": 0.012, "distinctUsers": 10_000},
                            102: {"crashRate": 0.5, "distinctUsers": 10}}
    play.fresh_until[PACKAGE] = (2026, 12, 4)  # Play has computed daily data up to (not including) 4 December
    play.page_rows = 1  # one row a page: three pages
    metric = Metric.model_validate({"name": "crashes", "successCondition": "True", "provider": {"playVitals": {
        "packageName": PACKAGE, "versionCode": "101", "baselineVersionCode": "100", "days": 2}}})
    result, shown = PlayVitalsSource().measure(metric, {})
    assert result == {"release": 0.012, "baseline": 0.01}
    assert "(2d to 2026-12-03, Los Angeles days)" in shown
    queries = [r.json() for r in play.calls(":query", "POST")]
    assert len(queries) == 3 and [bool(q.get("pageToken")) for q in queries] == [False, True, True]
    spec = queries[0]["timelineSpec"]
    assert (spec["startTime"]["day"], spec["endTime"]["day"]) == (2, 4)
    assert spec["endTime"]["timeZone"] == {"id": "America/Los_Angeles"}
    play.fresh_until[PACKAGE] = None  # nothing computed yet
    with pytest.raises(EmptyResult, match="no daily crashRate data"):
        PlayVitalsSource().measure(metric, {})
    token = play.issue_token()
    base = f"{play.url}/v1beta1/apps/{PACKAGE}"
    play.fresh_until[PACKAGE] = (2026, 12, 4)
    day = {"year": 2026, "month": 12, "day": 3, "timeZone": {"id": "America/Los_Angeles"}}
    for body, words in [
        ({"metrics": ["anrRate"], "timelineSpec": {"aggregationPeriod": "DAILY", "startTime": day, "endTime": day}},
         "not supported by crashRateMetricSet"),
        ({"metrics": ["crashRate"], "timelineSpec": {"aggregationPeriod": "DAILY", "startTime": {**day, "timeZone": {
            "id": "UTC"}}, "endTime": day}}, "America/Los_Angeles dates"),
        ({"metrics": ["crashRate"], "timelineSpec": {"aggregationPeriod": "DAILY", "startTime": day,
                                                     "endTime": {**day, "day": 6}}}, "later than the latest"),
    ]:
        answer = httpx.post(f"{base}/crashRateMetricSet:query", json=body, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 400 and words in answer.text, answer.text
    assert play.violations == []


def test_going_back_before_the_first_phase_takes_the_draft_off_the_track():
    from activities.targets.play import wanted_releases
    from models.play import PlayChannel, PlayTrackInput

    track = [{"status": "completed", "versionCodes": ["100"]}, {"status": "draft", "versionCodes": ["101"], "name": "2"}]
    going_back = PlayTrackInput(channel=PlayChannel(package_name=PACKAGE), version_code=101, version_name="2",
                                basis_points=0, halted=True)
    assert wanted_releases(track, going_back) == track[:1], "no draft left for a Console click to ship ungated"
    first = going_back.model_copy(update={"halted": False, "draft": True})
    assert wanted_releases(track, first) == track, "the upload's draft is there already: left so"
