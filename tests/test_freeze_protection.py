"""Freeze protection: a device refuses a timestamp that has expired (a frozen mirror looks like this),
and the refresh schedule (`rollout release schedule-refresh`, a Temporal Schedule on the dev server)
re-signs it well before it expires, so an honest repository never does."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rollout_agent.agent import Refused

from localcluster.updates import new_repository
from models.names import task_queue_for
from models.updater import Expiry, RefreshInput
from tests.release_helpers import Channel, device, release_worker

REPO = Path(__file__).resolve().parent.parent
SHORT = Expiry(timestamp=4)  # seconds: the first release's timestamp, left to expire
# From the first refresh on, timestamps live LIFETIME seconds and the schedule (every second) re-signs one
# once half of it is used: a refresh may lag LIFETIME / 2 seconds (a workflow start and an S3 round trip)
# before the device sees it expire. 4 s left 2 s, which a loaded machine exceeded (a parallel run: the
# device saw the timestamp expire); 8 s left 4, which a fresh-clone run with seven test processes on the
# two cores exceeded once (session 22, run 8); 12 s leaves 6.
LIFETIME = 12


async def test_the_schedule_keeps_the_timestamp_fresh(dev_server, dev_client, s3_server, tmp_path, unique):
    setup = new_repository(s3_server, "updates", f"freeze-{unique}", tmp_path / "publisher", expiry=SHORT)
    (tmp_path / "artifacts").mkdir()
    channel = Channel(s3_server, setup, tmp_path / "artifacts")
    channel.release("1.0.0", expiry=SHORT)
    agent = device(setup, tmp_path / "devices", "device-1")
    assert agent.update()[1].ok
    await asyncio.sleep(5)
    with pytest.raises(Refused, match="ExpiredMetadataError"):
        agent.check()  # nobody re-signed: the device will not act on it

    queue = f"refresh-{unique}"
    # the schedule's runs go to the updater family's queue (models/names.py)
    async with release_worker(dev_client, task_queue_for(queue, "updater"), s3_server, setup) as updater:
        refreshed = updater.refresh_timestamp(RefreshInput(repository=setup.repository, expiry=Expiry(timestamp=LIFETIME)))
        assert refreshed.resigned == ["timestamp"]
        assert agent.check().decision.action == "stay"
        env = {**os.environ, **s3_server.environment(), "TEMPORAL_ADDRESS": dev_server.address}
        done = subprocess.run([sys.executable, "-m", "starters.cli", "release", "schedule-refresh", "--bucket", "updates",
                               "--prefix", f"freeze-{unique}", "--endpoint", s3_server.url, "--every", "1s",
                               "--timestamp-expiry", f"{LIFETIME}s", "--task-queue", queue], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        first = channel.versions()["timestamp"]
        deadline, checks = time.monotonic() + 3 * LIFETIME, 0
        while time.monotonic() < deadline:  # three timestamp lifetimes: every check passes
            assert (await asyncio.to_thread(agent.check)).decision.action == "stay"
            checks += 1
            await asyncio.sleep(0.5)
        resigned = channel.versions()["timestamp"] - first
        schedule = dev_client.get_schedule_handle(f"refresh/updates/freeze-{unique}")
        await schedule.delete()
    assert checks >= 15 and resigned >= 3, (checks, resigned)  # re-signed at least once a lifetime


def test_a_quiet_channel_is_re_signed_before_its_role_expires(s3_server, tmp_path, unique):
    """A channel with no release for a while: its role (online keys) is re-signed by the refresh, with
    the same targets, before it expires; root and targets (offline) are only reported when near expiry."""
    from activities.targets.updater import UpdaterActivities
    from activities.targets.updater.signers import Signers

    short = Expiry(timestamp=30, snapshot=30, channel=6)
    setup = new_repository(s3_server, "updates", f"quiet-{unique}", tmp_path / "publisher")
    (tmp_path / "artifacts").mkdir()
    channel = Channel(s3_server, setup, tmp_path / "artifacts")
    channel.release("1.0.0", expiry=short)
    agent = device(setup, tmp_path / "devices", "device-1")
    assert agent.update()[1].ok
    updater = setup.activities(s3_server.client())
    refresh = RefreshInput(repository=setup.repository, expiry=short)
    assert updater.refresh_timestamp(refresh).resigned == []  # nothing has used half its validity yet
    time.sleep(4)
    done = updater.refresh_timestamp(refresh)
    assert done.resigned == ["stable", "snapshot", "timestamp"] and done.offline_expiring == []
    time.sleep(3)  # past the first stable role's expiry
    assert agent.check().decision.why == "1.0.0 is the channel's release"
