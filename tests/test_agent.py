"""The device side against a real TUF repository in moto's S3: every tampering is refused by
python-tuf's client with nothing installed and the backup untouched; a failed install or health check
restores the previous version byte for byte; downloads resume; one agent at a time."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from rollout_agent.agent import Agent, Locked, Refused
from rollout_agent.install import tree_digest
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata

from localcluster.updates import make_artifact
from models.updater import Expiry
from tests.release_helpers import PLATFORM, Channel, device


@pytest.fixture
def channel(s3_server, updater_setup, tmp_path):
    return Channel(s3_server, updater_setup, tmp_path / "artifacts")


@pytest.fixture
def installed(channel, updater_setup, tmp_path):
    """A device on 1.0.0 (backed up when it takes the next release), and the channel offering 1.1.0."""
    (tmp_path / "artifacts").mkdir()
    channel.release("1.0.0")
    agent = device(updater_setup, tmp_path / "devices", "device-1")
    assert agent.update()[1].ok
    before = tree_digest(agent.installation.current.resolve())
    return agent, before


def assert_untouched(agent: Agent, before: str) -> None:
    assert agent.installation.installed_version() == "1.0.0"
    assert tree_digest(agent.installation.current.resolve()) == before
    backup = agent.installation.backup
    if backup.exists():  # a backup taken before the refusal is the 1.0.0 tree, unchanged
        manifest = json.loads((backup / "manifest.json").read_text())
        assert manifest == {"version": "1.0.0", "digest": before}
        assert tree_digest(backup / "1.0.0") == before


def refused(agent: Agent, before: str, words: str) -> str:
    with pytest.raises(Refused) as caught:
        agent.update()
    assert words in str(caught.value)
    assert_untouched(agent, before)
    return str(caught.value)


def artifact_object(channel: Channel, artifact) -> str:
    return f"targets/stable/{PLATFORM}/{artifact.sha256}.current"


def test_a_modified_artifact_is_refused(channel, installed):
    agent, before = installed
    a = channel.release("1.1.0")
    data = bytearray(channel.get(artifact_object(channel, a)))
    data[100] ^= 0xFF  # same length, one byte different
    channel.put(artifact_object(channel, a), bytes(data))
    refused(agent, before, "LengthOrHashMismatchError")


def test_an_artifact_whose_length_lies_is_refused(channel, installed):
    agent, before = installed
    a = channel.release("1.1.0")
    channel.put(artifact_object(channel, a), channel.get(artifact_object(channel, a)) + b"more bytes than signed")
    refused(agent, before, "DownloadLengthMismatchError")
    channel.put(artifact_object(channel, a), channel.get(artifact_object(channel, a))[:-40])  # and shorter
    refused(agent, before, "LengthOrHashMismatchError")


def repin(channel, role: str, data: bytes) -> None:
    """What a bucket writer without keys can do at most: put `data` as `role` and re-pin its length and
    hash in the snapshot, and the snapshot's in the timestamp (whose signature then no longer matches)."""
    import hashlib

    channel.put(role, data)
    ts = json.loads(channel.get("metadata/timestamp.json"))
    name = f"metadata/{ts['signed']['meta']['snapshot.json']['version']}.snapshot.json"
    snapshot = json.loads(channel.get(name))
    snapshot["signed"]["meta"][role.rpartition("/")[2].split(".", 1)[1]] |= {
        "length": len(data), "hashes": {"sha256": hashlib.sha256(data).hexdigest()}}
    raw = json.dumps(snapshot).encode()
    channel.put(name, raw)
    ts["signed"]["meta"]["snapshot.json"] |= {"length": len(raw), "hashes": {"sha256": hashlib.sha256(raw).hexdigest()}}
    channel.put("metadata/timestamp.json", json.dumps(ts).encode())


def test_modified_metadata_is_refused(channel, installed):
    agent, before = installed
    channel.release("1.1.0", basis_points=0)  # nobody in the cohort yet
    role = f"metadata/{channel.versions()['stable']}.stable.json"
    document = json.loads(channel.get(role))
    document["signed"]["targets"][f"stable/{PLATFORM}/current"]["custom"]["rollout"]["basisPoints"] = 10_000
    channel.put(role, json.dumps(document).encode())
    refused(agent, before, "LengthOrHashMismatchError")  # the snapshot pins each role's length and hash
    repin(channel, role, json.dumps(document).encode())
    refused(agent, before, "UnsignedMetadataError")  # and the timestamp's signature covers the pins


def test_metadata_signed_by_another_channels_key_is_refused(channel, installed, updater_setup):
    agent, before = installed
    channel.release("1.1.0", basis_points=0)
    role = f"metadata/{channel.versions()['stable']}.stable.json"
    md = Metadata.from_bytes(channel.get(role))
    md.signed.targets[f"stable/{PLATFORM}/current"].unrecognized_fields["custom"]["rollout"]["basisPoints"] = 10_000
    beta = updater_setup.signers.parent / "beta-1.pem"
    md.signatures.clear()
    md.sign(CryptoSigner(load_pem_private_key(beta.read_bytes(), None)))
    channel.put(role, md.to_bytes())
    refused(agent, before, "LengthOrHashMismatchError")
    repin(channel, role, md.to_bytes())
    refused(agent, before, "UnsignedMetadataError")


def test_an_expired_timestamp_is_refused(channel, installed):
    agent, before = installed
    channel.release("1.1.0", expiry=Expiry(timestamp=2))
    time.sleep(3)
    refused(agent, before, "ExpiredMetadataError")


def test_a_replayed_timestamp_or_snapshot_is_refused(channel, installed):
    agent, before = installed
    old_timestamp = channel.get("metadata/timestamp.json")
    old_snapshot = channel.get(f"metadata/{channel.versions()['snapshot']}.snapshot.json")
    channel.release("1.1.0", basis_points=0)
    assert agent.check().decision.action == "stay"  # the device has now seen the newer metadata
    new_timestamp = channel.get("metadata/timestamp.json")
    channel.put("metadata/timestamp.json", old_timestamp)
    refused(agent, before, "BadVersionNumberError")
    channel.put("metadata/timestamp.json", new_timestamp)
    channel.release("1.2.0", basis_points=0)  # a newer snapshot the device has not seen, replaced by an old one
    newest = f"metadata/{channel.versions()['snapshot']}.snapshot.json"
    channel.put(newest, old_snapshot)
    refused(agent, before, "LengthOrHashMismatchError")  # the timestamp pins the snapshot's hash
    repin_snapshot = json.loads(channel.get("metadata/timestamp.json"))
    repin_snapshot["signed"]["meta"]["snapshot.json"].pop("hashes")  # the pin gone: the timestamp's signature fails
    channel.put("metadata/timestamp.json", json.dumps(repin_snapshot).encode())
    refused(agent, before, "UnsignedMetadataError")


def test_a_failed_install_and_a_failed_health_check_restore_the_previous_version(channel, installed):
    agent, before = installed
    channel.release("1.1.0", broken=True)  # signed correctly, but the archive does not unpack
    check, outcome = agent.update()
    assert (outcome.ok, outcome.stage) == (False, "install-failed")
    assert_untouched(agent, before)
    channel.release("1.2.0", healthy=False)
    check, outcome = agent.update()
    assert (outcome.ok, outcome.stage) == (False, "health-failed")
    assert_untouched(agent, before)
    assert not (agent.installation.versions / "1.2.0").exists()
    assert agent.update()[0].decision.why == "1.2.0 already failed on this device: not tried again"
    channel.release("1.3.0")
    assert agent.update()[1].ok and agent.installation.installed_version() == "1.3.0"


def test_a_cut_download_resumes_where_it_stopped(channel, installed):
    agent, before = installed
    a = channel.release("1.1.0", padding=3 * 1024 * 1024)
    data = channel.get(artifact_object(channel, a))
    url = f"{channel.setup.targets_url}{artifact_object(channel, a).removeprefix('targets/')}"
    partial = agent.fetcher.partial_path(url)
    os.makedirs(agent.fetcher.partial_dir, exist_ok=True)
    with open(partial, "wb") as out:
        out.write(data[: len(data) // 2])  # what arrived before the connection dropped
    seen = []
    agent.fetcher.progress = lambda have, total: seen.append((have, total))
    check, outcome = agent.update()
    assert outcome.ok and agent.installation.installed_version() == "1.1.0"
    assert agent.fetcher.resumed_from == len(data) // 2 and seen[-1] == (len(data), len(data))


def test_one_agent_at_a_time_and_the_cli_says_what_happened(channel, installed, updater_setup, tmp_path):
    agent, _ = installed
    with agent.locked(), pytest.raises(Locked), Agent(agent.config).locked():
        pass
    config = tmp_path / "devices" / "device-1" / "agent.json"
    run = lambda *args: subprocess.run([sys.executable, "-m", "rollout_agent.cli", *args, "--config", str(config)],  # noqa: E731
                                       capture_output=True, text=True, timeout=60)
    done = run("check", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["action"] == "stay"
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**json.loads(config.read_text()), "channel": ""}))
    bad = subprocess.run([sys.executable, "-m", "rollout_agent.cli", "check", "--config", str(broken)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.strip() == f"rollout-agent: config {broken}: channel is required"
    channel.release("1.1.0", healthy=False)
    failed = run("update", "--json")
    assert failed.returncode == 5 and json.loads(failed.stdout)["outcome"]["stage"] == "health-failed"


def test_crash_beacons_wait_in_the_outbox_while_offline(channel, installed, tmp_path):
    agent, _ = installed
    agent.config.telemetry_url = "http://127.0.0.1:9/report"  # nothing listens: offline
    agent.reporter.crash("1.0.0", "segfault")
    agent.reporter.crash("1.0.0", "again")
    assert agent.reporter.pending() == 2
    got = []

    class Collector(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            got.extend(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

    import threading
    from http.server import ThreadingHTTPServer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    agent.config.telemetry_url = f"http://127.0.0.1:{server.server_address[1]}/report"
    assert agent.reporter.flush() and agent.reporter.pending() == 0
    server.shutdown()
    assert [(e["event"], e["version"], e["message"]) for e in got] == [("crash", "1.0.0", "segfault"),
                                                                         ("crash", "1.0.0", "again")]


def test_the_agent_goes_through_the_proxy_the_environment_names(channel, updater_setup, tmp_path, monkeypatch):
    """HTTP_PROXY is honoured (python-tuf's urllib3 fetcher, resumable downloads included): a loopback
    forward proxy sees every metadata and artifact request."""
    import urllib.request

    seen: list[str] = []

    class Proxy(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seen.append(self.path)
            assert self.path.startswith("http://localhost:")  # a proxy gets the absolute URL; loopback only
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("range", "user-agent")}
            try:
                with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                        urllib.request.Request(self.path, headers=headers), timeout=10) as answer:
                    body, status = answer.read(), answer.status
            except urllib.error.HTTPError as error:
                body, status = error.read(), error.code
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    proxy = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    (tmp_path / "artifacts").mkdir()
    channel.release("1.0.0")
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.delenv("no_proxy", raising=False)
    setup = updater_setup
    via_localhost = dataclasses.replace(setup, base_url=setup.base_url.replace("127.0.0.1", "localhost"))
    agent = device(via_localhost, tmp_path / "devices", "behind-a-proxy")
    check, outcome = agent.update()
    proxy.shutdown()
    assert outcome.ok and agent.installation.installed_version() == "1.0.0"
    assert any(p.endswith("/metadata/timestamp.json") for p in seen)
    assert any("/targets/stable/" in p for p in seen), seen


def test_a_health_command_past_its_time_limit_fails_and_restores(channel, installed, updater_setup, tmp_path):
    agent, before = installed
    channel.release("1.1.0")
    agent.config.health = ["sh", "-c", "sleep 30"]
    agent.config.health_timeout = 1
    started = time.monotonic()
    check, outcome = agent.update()
    assert (outcome.stage, outcome.message) == ("health-failed", "health command took longer than 1s")
    assert time.monotonic() - started < 15
    assert_untouched(agent, before)
