"""Four months of nightly releases on one channel through a `ReleaseTrain` on the time-skipping server: each
night a StagedRelease child (real TUF metadata in moto's S3), the train continuing as new so no run's
history passes 10,000 events (here: a lower limit, 500, so the 120 nights take several runs). The publisher
verifies the whole repository before each publish, so a night costs more as the channel's targets grow: a
year (365 nights) took 3-6 minutes of the suite for what 120 nights show as well."""

from __future__ import annotations

import asyncio
import time

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from localcluster.updates import make_artifact
from models.status import RolloutStatus
from models.train import SubmitRelease, TrainInput, TrainStatus, headroom, room, train_id
from models.updater import ChannelInput
from starters.commands import ASK_AGAIN
from tests.helpers import eventually
from tests.release_helpers import device, release_document, release_worker
from workflows.train import ReleaseTrain

NIGHTS = 120


@pytest.mark.slow
@pytest.mark.timeout(600)  # CPU-bound (120 publishes of real TUF metadata)
async def test_four_months_of_nightly_releases_stay_small_per_run(time_skipping_env, s3_server, updater_setup, tmp_path,
                                                              unique):
    env, setup = time_skipping_env, updater_setup
    queue = f"train-{unique}"
    tid = train_id("test", f"nightly-{unique}")
    async with release_worker(env.client, queue, s3_server, setup) as updater:
        handle = await env.client.start_workflow(
            ReleaseTrain.run, TrainInput(name=f"nightly-{unique}", environment="test", continue_after_events=500),
            id=tid, task_queue=queue)
        refused = []  # all at once, as a scheduler catching up would: past maxQueued, refused until one starts
        for night in range(1, NIGHTS + 1):
            version = f"1.0.{night}"
            release = release_document(f"nightly-{unique}", setup, make_artifact(tmp_path, version), version,
                                       [{"percent": 100}], channel="nightly")
            while True:
                try:
                    await handle.execute_update("submit", SubmitRelease(release=release, by="scheduler"))
                    break
                except WorkflowUpdateFailedError as error:
                    refused.append(error.cause.message)
                    await asyncio.sleep(1)  # each refusal is a workflow task on the worker: not a busy loop
        status = await _all_released(handle, NIGHTS)
        last = await env.client.get_workflow_handle(status.results[-1].workflow_id, result_type=RolloutStatus).result()
        assert (last.started_by, last.initiator) == (f"train nightly-{unique}", "scheduler"), \
            "a release's approvals refuse whoever submitted it (forbidSelfApproval), not the train"
        channel = updater.read_channel(ChannelInput(repository=setup.repository, channel="nightly",
                                                    platform="linux-x86_64"))
        sizes, run_id = [], None
        while True:  # from the newest run back along the continue-as-new chain
            history = await env.client.get_workflow_handle(tid, run_id=run_id).fetch_history()
            sizes.append(len(history.events))
            run_id = history.events[0].workflow_execution_started_event_attributes.continued_execution_run_id
            if not run_id:
                break
        await handle.terminate("test over")
    assert channel.current.version == f"1.0.{NIGHTS}" and channel.state.basis_points == 10_000
    assert all(r.phase.value == "Healthy" for r in status.results) and status.results[-1].version == f"1.0.{NIGHTS}"
    print(f"{NIGHTS} nightly releases: {len(sizes)} train runs, largest history {max(sizes)} events")
    assert status.runs >= 3 and max(sizes) <= 500
    full = "the train has 25 releases waiting (maxQueued 25): submit again once one has started"
    continuing = "the train continues as new once the running release ends: submit again then"
    assert full in refused and set(refused) <= {full, continuing}, set(refused)
    nightly = device(setup, tmp_path / "devices", "dev-box", channel="nightly")
    assert nightly.update()[1].version == f"1.0.{NIGHTS}"
    assert len(sizes) == status.runs


async def _all_released(handle, count: int, stalled_after: float = 60) -> TrainStatus:
    """Until `count` nights are released; fails only when no night is released for `stalled_after` seconds
    (how long the year takes depends on the machine's load, not on the train). A query the worker does not
    answer in time is asked again, as `rollout` does (CI's stop 37: its threads publishing TUF metadata held
    the worker past the server's query deadline); it is no progress, so a train that never answers still fails."""
    status, progress, last, unanswered = None, time.monotonic(), -1, None
    while status is None or status.released < count:
        if time.monotonic() - progress > stalled_after:
            raise AssertionError(f"the train stalled at {last} of {count} nights for {stalled_after}s "
                                 f"(last unanswered query: {unanswered!r})")
        try:
            status = await handle.query("status", result_type=TrainStatus)
        except RPCError as error:
            if error.status not in ASK_AGAIN:
                raise
            unanswered = f"{error.status.name}: {error.message}"
        if status is not None and status.released != last:
            progress, last = time.monotonic(), status.released
        if status is None or status.released < count:
            await asyncio.sleep(1)
    return status


def test_the_room_before_the_limit_is_never_more_than_half_of_it():
    """A limit below twice the headroom would have every run continue as new at once; inputs recorded before
    maxQueued existed still decode (the model does not refuse them)."""
    assert room(10_000, 25) == headroom(25) == 220 and room(500, 25) == 220
    assert room(300, 25) == 150 and room(100, 2) == 36
    assert TrainInput(name="n", environment="test", continue_after_events=100).max_queued == 25
