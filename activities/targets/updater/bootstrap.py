"""`rollout release init`: a new updater repository — keys, root, the channel delegations.

Generates ed25519 keys (`file2:` PEM files, mode 0600) in two directories that must not travel together:
`keys_dir/offline/` holds root and targets (they sign who may sign: keep them off every worker, on
removable media or in a KMS/HSM, used only for rotations and for re-signing root and targets before
they expire); `keys_dir/worker/` holds what the worker needs: `signers.json` (`$DURABLE_ROLLOUTS_TUF_SIGNERS`:
the channel, snapshot and timestamp keys only), `trust.json` (`$DURABLE_ROLLOUTS_TUF_TRUST`: the root it
verifies the bucket from, the endpoint) and that root. Then writes version 1 of root, targets (delegating
`<channel>/*/*` to one role per channel, each with its own keys and threshold), the channel roles,
snapshot and timestamp. Prints nothing secret. A keys directory is used once (a second init into it is
refused: it would overwrite the first repository's keys).
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import DelegatedRole, Delegations, Root, Snapshot, Targets, Timestamp

from activities.targets.updater.repository import S3Repository
from activities.targets.updater.signers import Signers
from activities.targets.updater.store import Store
from models.updater import Expiry, Repository

CHANNELS = ("stable", "beta", "alpha", "nightly")
OFFLINE = (Root.type, Targets.type)


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _write(path: Path, data: str | bytes) -> Path:
    """A new file only its owner can read, from its first byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data.encode() if isinstance(data, str) else data)
    return path


def _new_key(keys_dir: Path, name: str, uris: dict[str, str]) -> Any:
    signer = CryptoSigner.generate_ed25519()
    path = _write(keys_dir / f"{name}.pem", signer.private_bytes)
    uris[signer.public_key.keyid] = f"file2:{path}"
    return signer.public_key


def allow_device_reads(s3: Any, repository: Repository) -> None:
    """Add (or renew) this repository's public-read statement to the bucket policy, keeping every other
    statement: S3's PutBucketPolicy replaces the whole policy, so a second repository in the same bucket
    would otherwise lock the first one's devices out."""
    sid = "DurableRolloutsDevicesRead" + hashlib.sha256(repository.prefix.encode()).hexdigest()[:16]
    try:
        policy = json.loads(s3.get_bucket_policy(Bucket=repository.bucket)["Policy"])
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "NoSuchBucketPolicy":
            raise
        policy = {"Version": "2012-10-17", "Statement": []}
    statements = policy.get("Statement", [])
    statements = [statements] if isinstance(statements, dict) else statements
    resource = f"arn:aws:s3:::{repository.bucket}/{repository.key('*')}"
    kept = [s for s in statements if s.get("Sid") != sid]
    policy["Statement"] = [*kept, {"Sid": sid, "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                   "Resource": resource}]
    s3.put_bucket_policy(Bucket=repository.bucket, Policy=json.dumps(policy))


def initialize(s3: Any, repository: Repository, keys_dir: Path, thresholds: dict[str, int] | None = None,
               expiry: Expiry | None = None, public_read: bool = False, endpoint: str | None = None) -> dict[str, Any]:
    """Create the repository; returns {"root": <1.root.json bytes>, "signers": <the worker's signers file>,
    "trust": <the worker's trust file>, "offline": <the offline keys' directory>}."""
    store = Store(s3, repository)
    try:
        s3.head_bucket(Bucket=repository.bucket)
    except ClientError as error:
        raise LookupError(f"bucket {repository.bucket}: {error.response.get('Error', {}).get('Code', error)} "
                          "(create it first)") from None
    if store.exists("metadata", "root.json") is not None:
        raise ValueError(f"{repository.describe()} already has a TUF repository (root.json)")
    keys_dir = keys_dir.resolve()  # the signers and trust files name absolute paths, whatever the cwd later
    if (keys_dir / "worker").exists() or (keys_dir / "offline").exists():
        raise ValueError(f"{keys_dir} already holds a repository's keys: give a new --keys directory")
    thresholds = {c: 1 for c in CHANNELS} | (thresholds or {})
    worker, offline = _private_dir(keys_dir / "worker"), _private_dir(keys_dir / "offline")
    online_uris: dict[str, str] = {}
    offline_uris: dict[str, str] = {}
    root = Root(consistent_snapshot=True, expires=datetime.now(UTC))
    for role in (Root.type, Targets.type, Snapshot.type, Timestamp.type):
        held = (offline, offline_uris) if role in OFFLINE else (worker, online_uris)
        root.add_key(_new_key(held[0], role, held[1]), role)
    delegations = Delegations(keys={}, roles={})
    for channel in CHANNELS:
        keyids = []
        for n in range(thresholds[channel]):
            key = _new_key(worker, f"{channel}-{n + 1}", online_uris)
            delegations.keys[key.keyid] = key
            keyids.append(key.keyid)
        delegations.roles[channel] = DelegatedRole(channel, keyids, thresholds[channel], True, paths=[f"{channel}/*/*"])
    signers_file = _write(worker / "signers.json", json.dumps(online_uris, indent=2))
    _write(offline / "signers.json", json.dumps(offline_uris, indent=2))

    repo = S3Repository(store, Signers(online_uris | offline_uris), expiry or Expiry(), datetime.now(UTC))
    repo.create(Root.type, root)
    repo.create(Targets.type, Targets(expires=datetime.now(UTC), delegations=delegations))
    for channel in CHANNELS:
        repo.create(channel, Targets(expires=datetime.now(UTC)))
    repo.create(Snapshot.type, Snapshot(expires=datetime.now(UTC)))
    repo.create(Timestamp.type, Timestamp(expires=datetime.now(UTC)))
    for role in (Root.type, *CHANNELS, Targets.type):
        repo.close(role, repo.metadata[role])
    repo.snapshot().meta.update(repo.targets_infos)
    repo.close(Snapshot.type, repo.metadata[Snapshot.type])
    repo.timestamp().snapshot_meta = repo.snapshot_info
    repo.close(Timestamp.type, repo.metadata[Timestamp.type])
    repo.commit()
    policy_error = ""
    if public_read:  # after the commit: a refused policy (Block Public Access) leaves a working repository
        try:
            allow_device_reads(s3, repository)
        except ClientError as error:
            policy_error = f"{error.response.get('Error', {}).get('Code', '')}: {error.response.get('Error', {}).get('Message', '')}"
    first_root = store.get("metadata", "1.root.json")[0]
    trusted_root = worker / "root.json"
    trusted_root.write_bytes(first_root)
    entry = {"root": str(trusted_root)} | ({"endpoint": endpoint} if endpoint else {})
    trust_file = _write(worker / "trust.json", json.dumps({"repositories": {repository.describe(): entry}}, indent=2))
    return {"root": first_root, "signers": str(signers_file), "trust": str(trust_file), "offline": str(offline),
            "policy_error": policy_error}
