"""The device agent when things go wrong mid-way or the artifact's shape is hostile (issue 23 §2): a crash
during the health check, archives with absolute paths or too much in them, a server that trickles bytes,
a repository under a `targets/` prefix, a signed rollout state of the wrong types or with a path in its
artifact name. The signed bytes are trusted; their shape and the device's own crashes are not."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from rollout_agent.agent import Agent, AgentConfig, Refused, Unreachable

from activities.targets.updater.repository import S3Repository
from activities.targets.updater.signers import Signers
from activities.targets.updater.store import Store
from localcluster.updates import device_config, new_repository
from models.updater import Expiry
from tests.release_helpers import PLATFORM, Channel, device


@pytest.fixture
def channel(s3_server, updater_setup, tmp_path):
    (tmp_path / "artifacts").mkdir()
    return Channel(s3_server, updater_setup, tmp_path / "artifacts")


def on_one_zero(channel, setup, tmp_path, **config) -> Agent:
    channel.release("1.0.0")
    path = device_config(setup, tmp_path / "device", "device-1")
    raw = json.loads(path.read_text()) | config
    path.write_text(json.dumps(raw))
    agent = Agent(AgentConfig.load(str(path)))
    assert agent.update()[1].ok and agent.installation.installed_version() == "1.0.0"
    return agent


def test_a_crash_during_the_health_check_is_rolled_back_on_the_next_start(channel, updater_setup, tmp_path):
    """The agent process is SIGKILLed by its own health command (the device lost power mid-check): the
    next run finds the pending install, puts 1.0.0 back, records 1.1.0 as failed and does not retry it."""
    agent = on_one_zero(channel, updater_setup, tmp_path)
    config = tmp_path / "device" / "agent.json"
    raw = json.loads(config.read_text())
    raw["health"] = ["sh", "-c", 'if [ "$ROLLOUT_AGENT_VERSION" = 1.1.0 ]; then kill -9 $PPID; sleep 5; fi']
    config.write_text(json.dumps(raw))
    channel.release("1.1.0")
    crashed = subprocess.run([sys.executable, "-m", "rollout_agent.cli", "update", "--json", "--config", str(config)],
                             capture_output=True, text=True, timeout=120)
    assert crashed.returncode == -9, crashed.stderr
    assert agent.installation.installed_version() == "1.1.0", "the crash left the new version current, unchecked"
    assert json.loads((agent.installation.root / "pending.json").read_text())["version"] == "1.1.0"
    again = subprocess.run([sys.executable, "-m", "rollout_agent.cli", "update", "--json", "--config", str(config)],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert agent.installation.installed_version() == "1.0.0"
    assert json.loads(again.stdout)["why"] == "1.1.0 already failed on this device: not tried again"
    assert not (agent.installation.root / "pending.json").exists()
    assert not (agent.installation.versions / "1.1.0").exists()


def archive(path, members: list[tuple[str, bytes | str]]) -> None:
    """A .tar.gz of (name, data) members; data given as a string is a symlink's target; a name starting
    with `pax:` carries a pax header of that many bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as out:
        for name, data in members:
            info = tarfile.TarInfo(name.split(":")[-1])
            if name.startswith("pax:"):
                info.pax_headers = {"comment": "x" * int(name.split(":")[1])}
            if isinstance(data, str):
                info.type, info.linkname = tarfile.SYMTYPE, data
            else:
                info.size = len(data)
            out.addfile(info, None if isinstance(data, str) else io.BytesIO(data))
    path.write_bytes(buffer.getvalue())


@pytest.mark.parametrize(("members", "words"), [
    ([("bin/health", b"#!/bin/sh\n"), ("/etc/cron.d/evil", b"* * * * * root sh\n")], "an absolute path"),
    ([("bin/../../outside", b"x")], "climbs out"),
    ([(f"f{n}", b"") for n in range(30)], "more than 20 members"),
    ([("big.bin", b"\0" * 5000)], "unpacks to more than 4096 bytes"),
    ([("pax:2000000:notes.txt", b"hello")], "an extended header of"),  # read whole into memory by tarfile
    ([("bin/health", b"#!/bin/sh\n"), ("etc", "../../../etc")], "outside the archive"),
])
def test_an_archive_of_a_hostile_shape_is_refused_not_rewritten(channel, updater_setup, tmp_path, members, words):
    agent = on_one_zero(channel, updater_setup, tmp_path, max_members=20, max_unpacked_bytes=4096)
    path = tmp_path / "artifacts" / "hostile-1.1.0.tar.gz"
    archive(path, members)
    a = channel.activities.upload_artifact(channel.upload("1.1.0").model_copy(update={"path": str(path)}))
    channel.publish(a)
    check, outcome = agent.update()
    assert (outcome.ok, outcome.stage) == (False, "install-failed") and words in outcome.message, outcome
    assert agent.installation.installed_version() == "1.0.0"
    assert not any(p.name.startswith((".1.1.0", "1.1.0")) for p in agent.installation.versions.iterdir())


def test_a_server_that_trickles_bytes_cannot_hold_the_agent(channel, updater_setup, tmp_path):
    """Artifacts come through a server that sends a byte every 0.2 s (each read well inside the socket
    timeout): the download stops at its deadline, the lock is free again, the partial file is kept."""
    agent = on_one_zero(channel, updater_setup, tmp_path, max_download_seconds=2)
    a = channel.release("1.1.0", padding=64 * 1024)
    data = channel.get(f"targets/stable/{PLATFORM}/{a.sha256}.current")

    class Trickle(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                for byte in data:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    agent.config.targets_url = f"http://127.0.0.1:{server.server_address[1]}/"
    started = time.monotonic()
    with pytest.raises(Unreachable, match="not finished within its time limit"):
        agent.update()
    assert time.monotonic() - started < 15
    server.shutdown()
    assert agent.installation.installed_version() == "1.0.0"
    assert any((agent.state_dir / "partial").iterdir()), "what arrived is kept for the next try"
    with agent.locked():  # nobody holds it
        pass


def test_a_repository_under_a_targets_prefix_works(s3_server, tmp_path, unique):
    """Metadata and artifacts are told apart by what python-tuf asks for, not by `/targets/` in the URL."""
    setup = new_repository(s3_server, "updates", f"targets/{unique}", tmp_path / "publisher")
    (tmp_path / "artifacts").mkdir()
    channel = Channel(s3_server, setup, tmp_path / "artifacts")
    channel.release("1.0.0")
    agent = device(setup, tmp_path / "devices", "device-1")
    for _ in range(2):  # the second check reads metadata the first one cached
        check, outcome = agent.update()
    assert agent.installation.installed_version() == "1.0.0", check


def sign_state(setup, s3, change) -> None:
    """What a buggy (or stolen-key) publisher could sign: the channel's current target's state, changed."""
    store = Store(s3, setup.repository)
    repository = S3Repository(store, Signers(setup.signer_uris()), Expiry(), datetime.now(UTC))
    repository.load(setup.root.read_bytes())
    with repository.edit_targets("stable") as role:
        change(role.targets[f"stable/{PLATFORM}/current"].unrecognized_fields["custom"]["rollout"])
    repository.do_snapshot()
    repository.do_timestamp()
    repository.commit()


@pytest.mark.parametrize(("field", "value", "words"), [
    ("basisPoints", "10000", "rollout.basisPoints: must be an integer, not str"),
    ("halted", "false", "rollout.halted: must be true or false, not str"),
    ("basisPoints", 10001, "rollout.basisPoints: 10001 is not in [0, 10000]"),
    ("artifact", "../../../.profile", "rollout.artifact: '../../../.profile' is not a plain file name"),
])
def test_a_signed_rollout_state_of_the_wrong_shape_is_refused(channel, updater_setup, tmp_path, field, value, words):
    agent = on_one_zero(channel, updater_setup, tmp_path)
    channel.release("1.1.0", basis_points=0)
    sign_state(updater_setup, channel.s3, lambda rollout: rollout.update({field: value}))
    with pytest.raises(Refused, match="the signed rollout state is unreadable") as caught:
        agent.update()
    assert words in str(caught.value)
    assert agent.installation.installed_version() == "1.0.0"
