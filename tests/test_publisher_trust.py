"""The updater's publisher trusts nothing it reads from the bucket (issue 23 §1).

The attacker here can write to the bucket and holds no key. Each edit they make must be refused by the
publisher before it signs anything — so the next ordinary publish, refresh or promotion never puts the
worker's signatures on it — with nothing written. A publish that stopped before its commit leaves files
the next one never overwrites; the lease is checked before the commit; the worker's configuration, not
the Release, names the endpoint and bounds the expiry; a second repository keeps the first one's bucket
policy statement."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner
from temporalio.exceptions import ApplicationError
from tuf.api.metadata import Metadata, Root

from activities.targets.updater.store import RepositoryBusy, Store
from localcluster.updates import make_artifact, new_repository
from models.updater import Expiry, PublishInput, RefreshInput, ReleaseState, Repository
from tests.release_helpers import PLATFORM, Channel, device


@pytest.fixture
def channel(s3_server, updater_setup, tmp_path):
    (tmp_path / "artifacts").mkdir()
    channel = Channel(s3_server, updater_setup, tmp_path / "artifacts")
    channel.release("1.0.0")
    return channel


def bucket_state(channel: Channel) -> dict[str, bytes]:
    """Every metadata and target object of the repository, by key (the lease object aside)."""
    objects = channel.s3.list_objects_v2(Bucket="updates", Prefix=channel.setup.repository.key(""))["Contents"]
    return {o["Key"]: channel.s3.get_object(Bucket="updates", Key=o["Key"])["Body"].read() for o in objects
            if not o["Key"].endswith(".publish-lock")}


def refused_without_writing(channel: Channel, words: str) -> None:
    before = bucket_state(channel)
    with pytest.raises(ApplicationError) as raised:
        channel.release("6.6.6")
    assert raised.value.non_retryable and words in str(raised.value), raised.value
    after = bucket_state(channel)
    changed = {k for k in after if before.get(k) != after[k]} - {k for k in after if "/blobs/" in k}
    assert changed == set(), f"the publisher wrote {changed} over a repository that does not verify"
    with pytest.raises(ApplicationError, match="does not verify"):  # a refresh signs nothing either
        channel.activities.refresh_timestamp(RefreshInput(repository=channel.setup.repository, within_fraction=1))


def attacker_key() -> CryptoSigner:
    return CryptoSigner.generate_ed25519()


def stable_role(channel: Channel) -> tuple[str, Metadata]:
    name = f"metadata/{channel.versions()['stable']}.stable.json"
    return name, Metadata.from_bytes(channel.get(name))


def test_an_unsigned_edit_of_a_channel_role_is_not_signed_by_the_next_publish(channel):
    name, md = stable_role(channel)
    md.signed.targets[f"stable/{PLATFORM}/current"].unrecognized_fields["custom"]["rollout"]["basisPoints"] = 10_000
    md.signed.targets["stable/windows-x86_64/current"] = md.signed.targets[f"stable/{PLATFORM}/current"]
    channel.put(name, md.to_bytes())  # the old signatures kept: they no longer match
    refused_without_writing(channel, "does not verify")


def test_a_channel_role_signed_with_the_attackers_key_is_refused(channel):
    name, md = stable_role(channel)
    md.signed.targets["stable/windows-x86_64/current"] = md.signed.targets[f"stable/{PLATFORM}/current"]
    md.signatures.clear()
    md.sign(attacker_key())
    channel.put(name, md.to_bytes())
    refused_without_writing(channel, "stable")


def test_a_new_root_signed_by_the_attacker_is_not_followed(channel):
    """The attacker writes 2.root.json naming their own keys for everything, and root.json with it."""
    mine = attacker_key()
    md = Metadata.from_bytes(channel.get("metadata/1.root.json"))
    root: Root = md.signed
    for role in ("root", "targets", "snapshot", "timestamp"):
        for keyid in list(root.roles[role].keyids):
            root.revoke_key(keyid, role)
        root.add_key(mine.public_key, role)
    root.version = 2
    md.signatures.clear()
    md.sign(mine)
    channel.put("metadata/2.root.json", md.to_bytes())
    channel.put("metadata/root.json", md.to_bytes())
    refused_without_writing(channel, "2.root.json does not verify")


def test_a_timestamp_or_snapshot_rewritten_in_the_bucket_is_refused(channel):
    ts = Metadata.from_bytes(channel.get("metadata/timestamp.json"))
    snapshot_name = f"metadata/{ts.signed.snapshot_meta.version}.snapshot.json"
    original = channel.get(snapshot_name)
    snapshot = json.loads(original)
    snapshot["signed"]["meta"]["stable.json"]["version"] = 1  # an older, validly signed stable role
    channel.put(snapshot_name, json.dumps(snapshot).encode())  # signatures kept; length and hash now differ
    refused_without_writing(channel, "length or hash")
    channel.put(snapshot_name, original)
    ts.signed.snapshot_meta.version += 5
    channel.put("metadata/timestamp.json", ts.to_bytes())
    refused_without_writing(channel, "timestamp.json does not verify")
    channel.put("metadata/timestamp.json", b" " * (600 * 1024))  # a giant object is refused unread
    refused_without_writing(channel, "longer than 524288 bytes")


def test_a_blob_replaced_in_the_bucket_is_not_published(channel, tmp_path):
    a = channel.activities.upload_artifact(channel.upload("2.0.0"))
    channel.put(f"blobs/{a.sha256}", make_artifact(tmp_path, "evil").read_bytes())
    with pytest.raises(ApplicationError, match="its bytes are not the artifact") as raised:
        channel.publish(a)
    assert raised.value.non_retryable
    assert channel.read().current.version == "1.0.0"


def test_an_object_planted_where_devices_fetch_the_artifact_is_replaced(channel, tmp_path):
    """Same-length garbage at the content-addressed key devices download: the next phase hashes what is
    there and copies the blob again, so devices are not refused for ever."""
    a = channel.activities.upload_artifact(channel.upload("2.0.0"))
    channel.publish(a, basis_points=0)
    key = f"targets/stable/{PLATFORM}/{a.sha256}.current"
    channel.put(key, bytes(a.length))
    channel.publish(a, basis_points=10_000)
    assert hashlib.sha256(channel.get(key)).hexdigest() == a.sha256
    agent = device(channel.setup, tmp_path / "devices", "device-1")
    assert agent.update()[1].ok and agent.installation.installed_version() == "2.0.0"


def test_a_publish_that_stopped_before_its_commit_leaves_files_no_one_overwrites(channel, tmp_path, monkeypatch):
    """The first publish dies after writing its stable role and snapshot, before the timestamp; the next
    publish (another release) takes later versions: what a stopped publish left is never rewritten, so no
    name ever holds two contents a device could mix."""
    versions = channel.versions()
    a = channel.activities.upload_artifact(channel.upload("2.0.0"))
    real_put = Store.put

    def dies_at_the_commit(self, data, *parts, **kwargs):
        if parts[-1] == "timestamp.json":
            raise ConnectionError("the worker died here")
        return real_put(self, data, *parts, **kwargs)

    monkeypatch.setattr(Store, "put", dies_at_the_commit)
    with pytest.raises(ConnectionError):
        channel.publish(a)
    monkeypatch.undo()
    leftovers = {k: v for k, v in bucket_state(channel).items()
                 if k.endswith((f"/{versions['stable'] + 1}.stable.json", f"/{versions['snapshot'] + 1}.snapshot.json"))}
    assert len(leftovers) == 2, "the stopped publish wrote its stable role and snapshot"
    assert channel.read().current.version == "1.0.0", "nothing committed"

    b = channel.activities.upload_artifact(channel.upload("3.0.0"))
    channel.publish(b)
    after = channel.versions()
    assert after["stable"] == versions["stable"] + 2 and after["snapshot"] == versions["snapshot"] + 2
    assert {k: v for k, v in bucket_state(channel).items() if k in leftovers} == leftovers
    snapshot = Metadata.from_bytes(channel.get(f"metadata/{after['snapshot']}.snapshot.json")).signed
    assert snapshot.meta["stable.json"].hashes and snapshot.meta["stable.json"].length  # pinned, not just a version
    agent = device(channel.setup, tmp_path / "devices", "device-1")
    check, outcome = agent.update()
    assert outcome.ok and agent.installation.installed_version() == "3.0.0", check


def test_a_publish_that_lost_its_lease_writes_nothing(channel, monkeypatch):
    """A publish stalls past its lease; another takes the repository over. The stalled one, resuming, must
    not commit: the lease is checked before the first write and before the timestamp."""
    from activities.targets.updater import channel as channel_module

    a = channel.activities.upload_artifact(channel.upload("2.0.0"))
    real_publish = channel_module.publish

    def stalls(repository, *args):
        staged = real_publish(repository, *args)
        lock = repository.store.key("metadata", ".publish-lock")
        channel.s3.put_object(Bucket="updates", Key=lock, Body=json.dumps({"token": "another", "until": 1e12}).encode())
        return staged

    monkeypatch.setattr("activities.targets.updater.publish", stalls)
    before = bucket_state(channel)
    with pytest.raises(RepositoryBusy, match="lease was lost"):
        channel.publish(a)
    assert {k: v for k, v in bucket_state(channel).items() if "/metadata/" in k} == \
        {k: v for k, v in before.items() if "/metadata/" in k}


def test_a_root_rotation_signed_offline_is_followed(channel, updater_setup, tmp_path, monkeypatch):
    """Root v2 (signed by the offline root key, as a ceremony would) is verified through v1, the root the
    worker trusts: publishing goes on."""
    offline = updater_setup.signers.parent.parent / "offline" / "root.pem"
    signer = CryptoSigner(load_pem_private_key(offline.read_bytes(), None))
    md = Metadata.from_bytes(channel.get("metadata/1.root.json"))
    md.signed.version = 2
    md.signatures.clear()
    md.sign(signer)
    channel.put("metadata/2.root.json", md.to_bytes())
    channel.release("2.0.0")
    assert channel.read().current.version == "2.0.0" and channel.versions()["root"] == 2
    md.signed.version = 3
    md.signatures.clear()
    md.sign(signer)
    channel.put("metadata/3.root.json", md.to_bytes())
    seen = channel.read().versions
    assert seen["root"] == 3
    # a replica that has seen nothing walks 1 → 2 → 3 from its trust file: the intermediate root 2 is
    # below what the release has seen, the chain's end is not
    monkeypatch.setenv("DURABLE_ROLLOUTS_STATE_DIR", str(tmp_path / "another-replica"))
    from models.updater import ChannelInput
    again = channel.activities.read_channel(ChannelInput(repository=channel.setup.repository, channel="stable",
                                                         platform=PLATFORM, seen=seen))
    assert again.current.version == "2.0.0" and again.versions["root"] == 3


def test_the_worker_not_the_release_names_the_repository_endpoint_and_expiry(channel, s3_server):
    r = channel.setup.repository
    elsewhere = Repository(bucket=r.bucket, prefix=r.prefix, endpoint="https://attacker.example")
    with pytest.raises(ApplicationError, match="endpoint https://attacker.example: the worker's configuration names"):
        channel.activities.upload_artifact(channel.upload("2.0.0", repository=elsewhere))
    unknown = Repository(bucket=r.bucket, prefix="someone-else", endpoint=r.endpoint)
    with pytest.raises(ApplicationError, match="this worker does not publish to it"):
        channel.activities.upload_artifact(channel.upload("2.0.0", repository=unknown))
    a = channel.activities.upload_artifact(channel.upload("2.0.0"))
    for expiry, field in ((Expiry(timestamp=0), "timestamp"), (Expiry(timestamp="60d"), "timestamp")):
        with pytest.raises(ApplicationError, match=f"expiry.{field}: .* outside the worker's bounds") as raised:
            channel.activities.publish_release(PublishInput(
                repository=r, channel="stable", release="r", artifact=a, expiry=expiry,
                state=ReleaseState(basis_points=10_000, salt="s")))
        assert raised.value.non_retryable


def test_a_second_repository_keeps_the_first_ones_bucket_policy(s3_server, tmp_path, unique):
    s3 = s3_server.client()
    bucket = f"shared-{unique}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Backups", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
         "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/backups/*"}]}))
    new_repository(s3_server, bucket, "desktop", tmp_path / "one")
    new_repository(s3_server, bucket, "mobile", tmp_path / "two")
    statements = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]
    resources = sorted(s["Resource"] for s in statements)
    assert resources == [f"arn:aws:s3:::{bucket}/backups/*", f"arn:aws:s3:::{bucket}/desktop/*",
                         f"arn:aws:s3:::{bucket}/mobile/*"]
    with pytest.raises(ValueError, match="already holds a repository's keys"):
        new_repository(s3_server, bucket, "third", tmp_path / "one")


def test_a_release_reads_artifacts_only_under_the_workers_artifact_roots(channel, updater_setup, tmp_path, monkeypatch):
    """A Release author names the worker's own signing key, its environment, a device that never ends, a
    link out of the root: each is refused before a byte is read, naming the field."""
    root = tmp_path / "artifacts"
    monkeypatch.setenv("DURABLE_ROLLOUTS_ARTIFACT_ROOTS", str(root))
    monkeypatch.setenv("DURABLE_ROLLOUTS_TUF_SIGNERS", str(updater_setup.signers))
    key = updater_setup.signers.parent / "timestamp.pem"
    (root / "innocent.tar.gz").symlink_to(key)
    for path, words in ((key, "outside the worker's artifact roots"), ("/proc/self/environ", "outside"),
                        ("/dev/zero", "outside"), (root / "innocent.tar.gz", "outside"),
                        (root / "missing.tar.gz", "no such file on the worker")):
        request = channel.upload("9.9.9").model_copy(update={"path": str(path)})
        with pytest.raises(ApplicationError, match=f"artifact.file:? {path}.*{words}|artifact.file: {path}: {words}") as raised:
            channel.activities.upload_artifact(request)
        assert raised.value.non_retryable and str(path) in str(raised.value)
    monkeypatch.setenv("DURABLE_ROLLOUTS_ARTIFACT_ROOTS", str(tmp_path))  # a root that holds the keys
    request = channel.upload("9.9.9").model_copy(update={"path": str(key)})
    with pytest.raises(ApplicationError, match="in a directory holding the worker's keys"):
        channel.activities.upload_artifact(request)
    monkeypatch.delenv("DURABLE_ROLLOUTS_ARTIFACT_ROOTS")
    with pytest.raises(ApplicationError, match="DURABLE_ROLLOUTS_ARTIFACT_ROOTS, which is not set"):
        channel.activities.upload_artifact(channel.upload("9.9.9"))
    monkeypatch.setenv("DURABLE_ROLLOUTS_ARTIFACT_ROOTS", "/")  # a root over everything is no artifact root
    request = channel.upload("9.9.9").model_copy(update={"path": "/proc/self/environ"})
    with pytest.raises(ApplicationError, match="covers /proc"):
        channel.activities.upload_artifact(request)


def test_an_artifact_swapped_for_a_link_after_its_check_is_not_read(channel, updater_setup, tmp_path, monkeypatch):
    """Whoever writes the artifact root (CI) swaps the checked file for a link to the worker's key between
    the check and the read: the one descriptor everything is read from refuses it; nothing is uploaded."""
    import activities.artifacts as artifacts

    key = updater_setup.signers.parent / "timestamp.pem"
    request = channel.upload("9.9.9")
    checked = artifacts.artifact_file

    def swapped_after_the_check(given):
        real = checked(given)
        real.unlink()
        real.symlink_to(key)
        return real

    monkeypatch.setattr(artifacts, "artifact_file", swapped_after_the_check)
    before = {k for k in bucket_state(channel) if "/blobs/" in k}
    with pytest.raises(ApplicationError, match="changed while it was opened"):
        channel.activities.upload_artifact(request)
    assert {k for k in bucket_state(channel) if "/blobs/" in k} == before


def test_a_worker_whose_artifact_root_holds_its_keys_does_not_start(updater_setup, tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, **updater_setup.environment(), "DURABLE_ROLLOUTS_ARTIFACT_ROOTS": str(tmp_path),
           "TEMPORAL_ADDRESS": "127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-m", "starters.cli", "worker"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"rollout: $DURABLE_ROLLOUTS_ARTIFACT_ROOTS: {tmp_path} holds the worker's signing keys")
    assert len(done.stderr.strip().splitlines()) == 1


def test_older_signed_metadata_put_back_is_not_edited_from(channel, tmp_path, monkeypatch):
    """The attacker saves the timestamp while 1.0.0 is released, waits for a halt of 2.0.0 to be
    published, then puts the old timestamp back: the next publish must not edit (and sign) from the older
    state. The worker remembers the versions it saw; a worker with no memory (a new pod) is stopped by the
    versions the release itself carries (`seen`)."""
    from models.updater import ChannelInput

    old_timestamp = channel.get("metadata/timestamp.json")
    a = channel.activities.upload_artifact(channel.upload("2.0.0"))
    channel.publish(a, basis_points=0)
    seen = channel.read().versions
    newest = channel.get("metadata/timestamp.json")
    channel.put("metadata/timestamp.json", old_timestamp)
    before = bucket_state(channel)
    with pytest.raises(ApplicationError, match="older than version .* already seen: old metadata put back") as raised:
        channel.publish(a, basis_points=500)
    assert raised.value.non_retryable and bucket_state(channel) == before
    monkeypatch.setenv("DURABLE_ROLLOUTS_STATE_DIR", str(tmp_path / "a-new-pod"))
    with pytest.raises(ApplicationError, match="old metadata put back"):
        channel.activities.read_channel(ChannelInput(repository=channel.setup.repository, channel="stable",
                                                     platform=PLATFORM, seen=seen))
    channel.put("metadata/timestamp.json", newest)
    channel.publish(a, basis_points=500)
    assert channel.read().state.basis_points == 500
    assert channel.read().versions["timestamp"] > seen["timestamp"]
    assert channel.read().versions["timestamp"] >= int(time.time()) - 120  # its signing time: rising everywhere


def test_a_long_publish_keeps_its_lease_and_a_second_one_waits(channel, monkeypatch):
    """Hashing a large artifact takes longer than the lease: the publish renews it as it hashes, so a second
    publisher arriving after the lease's first term finds it held (and retries later) instead of taking
    it over mid-publish."""
    import threading
    import time

    from activities.targets.updater import store as store_module

    monkeypatch.setattr(store_module, "LEASE_SECONDS", 1)
    monkeypatch.setattr(store_module, "RENEW_AFTER", 0.1)
    real_digest = Store.digest

    def slow_digest(self, parts, beat):
        for _ in range(12):  # 2.4 s of "hashing", beating as it goes
            time.sleep(0.2)
            beat()
        return real_digest(self, parts, beat)

    a = channel.activities.upload_artifact(channel.upload("2.0.0"))
    monkeypatch.setattr(Store, "digest", slow_digest)
    errors: list[BaseException] = []

    def first() -> None:
        try:
            channel.publish(a)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    thread = threading.Thread(target=first)
    thread.start()
    time.sleep(1.6)  # past the lease's first term: only renewals keep it
    with pytest.raises(RepositoryBusy, match="is being published by another activity"):
        channel.activities.refresh_timestamp(RefreshInput(repository=channel.setup.repository, within_fraction=1))
    thread.join(30)
    assert errors == [] and channel.read().current.version == "2.0.0"
