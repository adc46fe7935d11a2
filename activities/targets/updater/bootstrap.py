"""`rollout release init`: a new updater repository — keys, root, the channel delegations.

Generates ed25519 keys (`file2:` PEM files under `keys_dir`, mode 0600) and the signers file the worker
reads (`$DURABLE_ROLLOUTS_TUF_SIGNERS`), then writes version 1 of root, targets (delegating
`<channel>/*/*` to one role per channel, each with its own keys and threshold), the channel roles,
snapshot and timestamp. Prints nothing secret. In production, create root and targets keys offline
(a ceremony; `tuf` or `tuf-on-ci`), give the worker only the channel, snapshot and timestamp keys.
"""

from __future__ import annotations

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


def _new_key(keys_dir: Path, name: str, uris: dict[str, str]) -> Any:
    signer = CryptoSigner.generate_ed25519()
    path = keys_dir / f"{name}.pem"
    path.write_bytes(signer.private_bytes)
    path.chmod(0o600)
    uris[signer.public_key.keyid] = f"file2:{path}"
    return signer.public_key


def initialize(s3: Any, repository: Repository, keys_dir: Path, thresholds: dict[str, int] | None = None,
               expiry: Expiry | None = None, public_read: bool = False) -> dict[str, Any]:
    """Create the repository; returns {"root": <root.json bytes>, "signers": <signers file path>}."""
    store = Store(s3, repository)
    try:
        s3.head_bucket(Bucket=repository.bucket)
    except ClientError as error:
        raise LookupError(f"bucket {repository.bucket}: {error.response.get('Error', {}).get('Code', error)} "
                          "(create it first)") from None
    if store.exists("metadata", "root.json") is not None:
        raise ValueError(f"{repository.describe()} already has a TUF repository (root.json)")
    thresholds = {c: 1 for c in CHANNELS} | (thresholds or {})
    keys_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(keys_dir, 0o700)
    uris: dict[str, str] = {}
    root = Root(consistent_snapshot=True, expires=datetime.now(UTC))
    for role in (Root.type, Targets.type, Snapshot.type, Timestamp.type):
        root.add_key(_new_key(keys_dir, role, uris), role)
    delegations = Delegations(keys={}, roles={})
    for channel in CHANNELS:
        keyids = []
        for n in range(thresholds[channel]):
            key = _new_key(keys_dir, f"{channel}-{n + 1}", uris)
            delegations.keys[key.keyid] = key
            keyids.append(key.keyid)
        delegations.roles[channel] = DelegatedRole(channel, keyids, thresholds[channel], True, paths=[f"{channel}/*/*"])
    signers_file = keys_dir / "signers.json"
    signers_file.write_text(json.dumps(uris, indent=2))
    signers_file.chmod(0o600)

    repo = S3Repository(store, Signers(uris), expiry or Expiry(), datetime.now(UTC))
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
    if public_read:
        s3.put_bucket_policy(Bucket=repository.bucket, Policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Sid": "DevicesRead", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                           "Resource": f"arn:aws:s3:::{repository.bucket}/{repository.key('*')}"}]}))
    repo.commit()
    return {"root": store.get("metadata", "1.root.json")[0], "signers": str(signers_file)}
