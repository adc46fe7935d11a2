"""The staged-release workflow on the time-skipping server, with the real updater activities writing
real TUF metadata into moto's S3, and the real rollout-agent (python-tuf's client) reading it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from activities.analysis import default_providers
from activities.targets.updater import UpdaterActivities
from localcluster.updates import make_artifact
from models.approvals import ApproveRequest, HaltRequest, PromoteRequest, ResumeRequest, RollbackRequest
from models.release import ReleaseInput, parse_release
from models.status import Phase, RolloutStatus
from models.updater import ChannelInput
from tests.helpers import eventually, skip_time
from tests.release_helpers import device, measure_activity, release_document, release_worker
from tests.test_flags import health
from workflows.release import StagedRelease

WEEK_PHASES = [
    {"percent": 1, "bake": "1d"},
    {"percent": 5, "bake": "1d"},
    {"percent": 20, "bake": "2d"},
    {"percent": 50, "bake": "2d"},
    {"percent": 80, "bake": "1d"},
]


async def status(handle) -> RolloutStatus:
    return await handle.query("status", result_type=RolloutStatus)


async def test_a_week_long_release_with_a_halt_runs_in_seconds(time_skipping_env, s3_server, updater_setup, tmp_path,
                                                                unique):
    env, setup = time_skipping_env, updater_setup
    artifact = make_artifact(tmp_path, "2.0.0")
    release = release_document(f"week-{unique}", setup, artifact, "2.0.0", WEEK_PHASES)
    queue = f"release-{unique}"
    async with release_worker(env.client, queue, s3_server, setup) as updater:
        read = ChannelInput(repository=setup.repository, channel="stable", platform="linux-x86_64")
        handle = await env.client.start_workflow(StagedRelease.run, ReleaseInput(release=release, requested_by="ci"),
                                                 id=release.rollout_id, task_queue=queue)
        await skip_time(env, timedelta(days=2, hours=12))  # into phase 3 (20 %, baking 2 days)
        s = await status(handle)
        assert (s.current_step, s.phase, s.reason) == (2, Phase.PAUSED, "Baking")
        assert s.exposure.desired == 20
        salt = updater.read_channel(read).state.salt

        await handle.execute_update("halt", HaltRequest(by="oncall", comment="support tickets"))
        halted = await eventually(lambda: updater.read_channel(read).state.halted, what="the signed state says halted")
        assert halted
        dev = device(setup, tmp_path / "devices", "any-device")
        check = dev.check()
        assert (check.decision.action, check.decision.why) == ("stay", "the release of 2.0.0 is halted")

        await skip_time(env, timedelta(days=3))  # halted: the bake clock stands still, the phase does not advance
        s = await status(handle)
        assert (s.current_step, s.reason) == (2, "Halted")
        await handle.execute_update("resume", ResumeRequest(by="oncall"))
        final: RolloutStatus = await handle.result()

    assert final.phase is Phase.HEALTHY, final.message
    assert final.exposure.desired == 100 and final.exposure.observed == 100
    after = updater.read_channel(read)
    assert after.state.salt == salt and not after.state.halted and after.state.basis_points == 10_000
    took = final.finished_at - final.started_at
    assert took >= timedelta(days=7) + timedelta(days=3) - timedelta(hours=12)  # 7 days of bake + the halt
    events = [h.event for h in final.history]
    assert events.count("halted") == 1 and events.count("resumed") == 1
    assert dev.update()[1].ok and dev.installation.installed_version() == "2.0.0"


async def test_rollback_sends_devices_back_and_promote_full_goes_to_everyone(time_skipping_env, s3_server,
                                                                             updater_setup, tmp_path, unique):
    env, setup = time_skipping_env, updater_setup
    queue = f"release-{unique}"
    async with release_worker(env.client, queue, s3_server, setup) as updater:
        first = release_document(f"one-{unique}", setup, make_artifact(tmp_path, "1.0.0"), "1.0.0",
                                 [{"percent": 10, "bake": "1h"}])
        handle = await env.client.start_workflow(StagedRelease.run, ReleaseInput(release=first), id=first.rollout_id,
                                                 task_queue=queue)
        await eventually(lambda: status(handle), what="started")
        await eventually(lambda: _in_pause(handle), what="baking")
        await handle.execute_update("promote", PromoteRequest(by="rm", full=True))
        assert (await handle.result()).phase is Phase.HEALTHY

        devices = [device(setup, tmp_path / "devices", f"d{n}") for n in range(6)]
        for d in devices:
            assert d.update()[1].ok
        second = release_document(f"two-{unique}", setup, make_artifact(tmp_path, "1.1.0"), "1.1.0",
                                  [{"percent": 100, "bake": "1d"}])
        handle = await env.client.start_workflow(StagedRelease.run, ReleaseInput(release=second),
                                                 id=second.rollout_id, task_queue=queue)
        await eventually(lambda: _in_pause(handle), what="baking at 100%")
        for d in devices[:3]:
            assert d.update()[1].version == "1.1.0"
        await handle.execute_update("rollback", RollbackRequest(by="oncall", reason="crash loop"))
        final = await handle.result()
        assert (final.phase, final.reason) == (Phase.DEGRADED, "RolledBack"), final.message
        state = updater.read_channel(ChannelInput(repository=setup.repository, channel="stable", platform="linux-x86_64"))
        assert state.current.version == "1.0.0" and state.state.downgrade
    for d in devices[:3]:
        check, outcome = d.update()
        assert check.decision.action == "rollback" and outcome.ok
        assert d.installation.installed_version() == "1.0.0"
    for d in devices[3:]:
        assert d.check().decision.action == "stay"


async def _in_pause(handle):
    s = await status(handle)
    return s.phase is Phase.PAUSED and s.reason == "Baking"


async def test_channel_promotion_copies_the_same_artifact_behind_an_approval(time_skipping_env, s3_server,
                                                                             updater_setup, tmp_path, unique):
    env, setup = time_skipping_env, updater_setup
    queue = f"release-{unique}"
    read = lambda channel: updater.read_channel(  # noqa: E731
        ChannelInput(repository=setup.repository, channel=channel, platform="linux-x86_64"))
    async with release_worker(env.client, queue, s3_server, setup) as updater:
        beta = release_document(f"beta-{unique}", setup, make_artifact(tmp_path, "3.0.0"), "3.0.0",
                                [{"percent": 100}], channel="beta")
        done = await env.client.execute_workflow(StagedRelease.run, ReleaseInput(release=beta), id=beta.rollout_id,
                                                 task_queue=queue)
        assert done.phase is Phase.HEALTHY
        promoted = release_document(f"stable-{unique}", setup, None, "3.0.0", [{"percent": 50, "bake": "1h"}],
                                    promote_from="beta", approval={"approvers": ["release-manager"]})
        handle = await env.client.start_workflow(StagedRelease.run, ReleaseInput(release=promoted, requested_by="ci"),
                                                 id=promoted.rollout_id, task_queue=queue)
        await eventually(lambda: _waiting_for_approval(handle), what="the channel's approval")
        assert read("stable").current is None, "nothing is promoted before the approval"
        await handle.execute_update("approve", ApproveRequest(by="release-manager"))
        await eventually(lambda: _in_pause(handle), what="baking in stable")
        assert read("stable").current.sha256 == read("beta").current.sha256
        assert read("stable").state.basis_points == 5_000
        await handle.execute_update("promote", PromoteRequest(by="release-manager", full=True))
        final = await handle.result()
    assert final.phase is Phase.HEALTHY and "promoted-from" in [h.event for h in final.history]
    stable_device = device(setup, tmp_path / "devices", "stable-1")
    assert stable_device.update()[1].ok and stable_device.installation.installed_version() == "3.0.0"


async def _waiting_for_approval(handle):
    s = await status(handle)
    return s if s.approval is not None else None


def test_a_promotion_names_the_channel_before_and_needs_an_approval(updater_setup, tmp_path):
    from models.documents import SpecError

    base = release_document("p", updater_setup, tmp_path / "x.tar.gz", "1.0.0", [{"percent": 10}])
    spec = base.model_dump(mode="json", by_alias=True, exclude_none=True)
    spec["spec"]["artifact"] = {"version": "1.0.0", "platform": "linux-x86_64"}
    spec["spec"]["channel"]["updater"]["promoteFrom"] = "alpha"
    with pytest.raises(SpecError) as wrong:
        parse_release(spec)
    assert wrong.value.problems == ["spec.channel.updater.promoteFrom: stable is promoted from beta, not alpha"]
    spec["spec"]["channel"]["updater"]["promoteFrom"] = "beta"
    with pytest.raises(SpecError) as unapproved:
        parse_release(spec)
    assert unapproved.value.problems == ["spec.approval: promoting beta to stable goes through the channel's approval: "
                                         "give spec.approval"]


async def test_two_channels_publishing_at_once_lose_nothing(time_skipping_env, s3_server, updater_setup, tmp_path,
                                                            unique):
    """Releases to beta and alpha at the same moment: the publish lease serialises their metadata
    writes (the loser retries), and the repository ends with both."""
    env, setup = time_skipping_env, updater_setup
    queue = f"release-{unique}"
    async with release_worker(env.client, queue, s3_server, setup) as updater:
        handles = []
        for channel, version in (("beta", "4.0.0"), ("alpha", "4.1.0")):
            doc = release_document(f"{channel}-{unique}", setup, make_artifact(tmp_path, version), version,
                                   [{"percent": p} for p in (10, 20, 30, 40, 50)], channel=channel)
            handles.append(await env.client.start_workflow(StagedRelease.run, ReleaseInput(release=doc),
                                                           id=doc.rollout_id, task_queue=queue))
        finals = [await h.result() for h in handles]
        assert all(f.phase is Phase.HEALTHY for f in finals)
        read = lambda channel: updater.read_channel(  # noqa: E731
            ChannelInput(repository=setup.repository, channel=channel, platform="linux-x86_64"))
        assert read("beta").current.version == "4.0.0" and read("alpha").current.version == "4.1.0"
        assert read("beta").versions["snapshot"] == 1 + 2 * 6  # every publish of both made its own snapshot


async def test_a_worker_without_the_channel_keys_fails_once_with_words(time_skipping_env, s3_server, updater_setup,
                                                                       tmp_path, unique):
    import concurrent.futures

    from temporalio.worker import Worker

    from activities.targets.updater.signers import Signers

    env, setup = time_skipping_env, updater_setup
    queue = f"release-{unique}"
    uris = {k: v for k, v in setup.signer_uris().items() if "stable" not in v}  # snapshot and timestamp, no stable
    updater = setup.activities(s3_server.client(), uris)
    doc = release_document(f"nokeys-{unique}", setup, make_artifact(tmp_path, "5.0.0"), "5.0.0", [{"percent": 10}])
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        async with Worker(env.client, task_queue=queue, workflows=[StagedRelease], activity_executor=pool,
                          activities=[updater.upload_artifact, updater.read_channel, updater.publish_release]):
            final = await env.client.execute_workflow(StagedRelease.run, ReleaseInput(release=doc), id=doc.rollout_id,
                                                      task_queue=queue)
            history = await env.client.get_workflow_handle(doc.rollout_id).fetch_history()
    assert final.phase is Phase.DEGRADED
    assert "stable: this worker holds 0 of the 1 keys needed ($DURABLE_ROLLOUTS_TUF_SIGNERS)" in final.message
    attempts = [e.activity_task_started_event_attributes.attempt for e in history.events
                if e.HasField("activity_task_started_event_attributes")]
    assert max(attempts) == 1, "a permanent fault is not retried"


async def test_on_failure_halt_waits_for_a_person_who_rolls_back(time_skipping_env, s3_server, updater_setup, tmp_path,
                                                                 unique, health):
    env, setup = time_skipping_env, updater_setup
    queue = f"release-{unique}"
    gate = {"templates": [{"templateName": "healthy"}]}
    template = {"name": "healthy", "metrics": [{"name": "ok", "successCondition": "result == True",
                                                "provider": {"web": {"url": health.url, "jsonPath": "ok"}}}]}
    async with release_worker(env.client, queue, s3_server, setup, extra=[measure_activity(default_providers())]) as u:
        read = lambda: u.read_channel(ChannelInput(repository=setup.repository, channel="stable",  # noqa: E731
                                                   platform="linux-x86_64"))
        first = release_document(f"base-{unique}", setup, make_artifact(tmp_path, "1.0.0"), "1.0.0", [{"percent": 100}])
        await env.client.execute_workflow(StagedRelease.run, ReleaseInput(release=first), id=first.rollout_id,
                                          task_queue=queue)
        health.ok = False
        doc = release_document(f"halt-{unique}", setup, make_artifact(tmp_path, "1.1.0"), "1.1.0",
                               [{"percent": 10, "analysis": gate}, {"percent": 50}],
                               onFailure="halt", analysis={"templates": [template]})
        handle = await env.client.start_workflow(StagedRelease.run, ReleaseInput(release=doc), id=doc.rollout_id,
                                                 task_queue=queue)
        s = await eventually(lambda: _reason(handle, "Halted"), timeout=60, what="halted by the failed gate")
        assert s.held_by == "workflow" and s.current_step == 0
        assert read().state.halted and read().current.version == "1.1.0"
        await handle.execute_update("rollback", RollbackRequest(by="oncall", reason="the gate failed"))
        final = await handle.result()
    assert (final.phase, final.reason) == (Phase.DEGRADED, "RolledBack")
    assert read().current.version == "1.0.0" and read().state.downgrade


async def _reason(handle, reason: str):
    s = await status(handle)
    return s if s.reason == reason else None
