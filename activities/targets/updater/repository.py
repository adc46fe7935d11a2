"""A TUF repository in S3, edited with python-tuf's Metadata API (`tuf.repository.Repository`).

Consistent snapshots: every metadata file but the timestamp is written as `<version>.<role>.json` and
never changed; artifacts are `targets/<channel>/<platform>/<sha256>.<name>`. One change (a release's
new percentage, a halt, a rollback) stages a new version of the channel's role, then snapshot, then
timestamp, each re-signed by the keys the worker holds; `commit()` writes them in that order, the
timestamp — the one mutable object — last: a device sees the old release or the new one, never a mix.
Snapshot and timestamp record each file's length and sha256, and a version is never written twice (a
file a stopped publish left is skipped, and every versioned file is created conditionally).

The publisher is a TUF client of its own repository: anyone who can write to the bucket could have
written what it reads, so `load` verifies root (from the root the worker's configuration trusts, through
every rotation), timestamp, snapshot, targets and each channel role — signatures, thresholds, versions,
lengths and hashes — before anything is edited or re-signed. Expiry is not a reason to refuse here: the
publisher is the one that renews it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError
from tuf.api.exceptions import LengthOrHashMismatchError, RepositoryError, UnsignedMetadataError
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, Targets, Timestamp
from tuf.api.serialization.json import JSONSerializer
from tuf.repository import Repository

from activities.targets.updater.seen import Seen
from activities.targets.updater.signers import Signers
from activities.targets.updater.store import Store, TooLong
from models.updater import Expiry

TOP_ROLES = (Root.type, Targets.type, Snapshot.type, Timestamp.type)
ROOT_ROTATIONS = 1024  # more new roots than this in one read: refused (a bucket writer cannot sign them anyway)
ROOT_LIMIT = 512 * 1024  # root and timestamp: a few kB; a bigger object in the bucket is refused unread
METADATA_LIMIT = 64 * 1024 * 1024  # a role whose length the snapshot does not pin (a repository made before)
LEFTOVERS = 64  # versions a stopped publish may have left above the current one (more: a person cleans up)


def _rank(role: str) -> int:
    """Publish order: root, the delegated (channel) roles, targets, snapshot, timestamp last."""
    return {Root.type: 0, Targets.type: 2, Snapshot.type: 3, Timestamp.type: 4}.get(role, 1)


class S3Repository(Repository):
    def __init__(self, store: Store, signers: Signers, expiry: Expiry, now: datetime, lease: Any = None,
                 seen: Seen | None = None, floor: dict[str, int] | None = None) -> None:
        self.store, self.signers, self.expiry, self.now, self.lease = store, signers, expiry, now, lease
        self.seen = seen  # what this worker saw of the repository before (activities/targets/updater/seen.py)
        self.floor = dict(floor or {})  # role -> the lowest version still acceptable
        self.metadata: dict[str, Metadata] = {}
        self.raw: dict[str, bytes] = {}  # each role's bytes as read (verified) or as staged
        self.staged: dict[str, Metadata] = {}
        self.timestamp_etag: str | None = None
        self.fresh: set[str] = set()  # created in this session (version 1, not bumped)

    # ---- reading: a TUF client of the bucket -----------------------------------------------------------

    def _untrusted(self, what: str, why: str) -> ApplicationError:
        return ApplicationError(f"{self.store.repository.describe()}: {what} does not verify ({why}): refusing to "
                                "publish over it; nothing was written", type="Untrusted", non_retryable=True)

    def _verified(self, role: str, name: str, data: bytes, delegator: Root | Targets, meta: MetaFile | None = None,
                  ) -> Metadata:
        """`data` (the object `name`) as `role`'s metadata, checked against what the delegator signed for it."""
        try:
            if meta is not None:
                meta.verify_length_and_hashes(data)
            md = Metadata.from_bytes(data)
            if md.signed.type != (role if role in TOP_ROLES else Targets.type):
                raise ValueError(f"a {md.signed.type} where {role} belongs")
            delegator.verify_delegate(role, md.signed_bytes, md.signatures)
        except UnsignedMetadataError as error:
            raise self._untrusted(name, f"signatures: {error}") from None
        except LengthOrHashMismatchError as error:
            raise self._untrusted(name, f"length or hash: {error}") from None
        except (RepositoryError, ValueError, KeyError, TypeError) as error:
            raise self._untrusted(name, f"{type(error).__name__}: {error}") from None
        if meta is not None and md.signed.version != meta.version:
            raise self._untrusted(name, f"version {md.signed.version} where {meta.version} is recorded")
        if role != Root.type and md.signed.version < self.floor.get(role, 0):  # root: the chain's end, in load
            raise self._untrusted(name, f"version {md.signed.version} is older than version {self.floor[role]} already "
                                        "seen: old metadata put back")
        self.raw[role] = data
        return md

    def _get(self, name: str, limit: int) -> tuple[bytes, str] | None:
        try:
            return self.store.get("metadata", name, limit=limit)
        except TooLong:
            raise self._untrusted(name, f"length: longer than {limit} bytes, refused unread") from None

    def load(self, trusted_root: bytes) -> S3Repository:
        """Root from the worker's trusted root through each newer `<n>.root.json` (each signed by the
        previous root's threshold and its own), then the timestamp; the other roles on first use. The chain
        starts at the newest root this worker verified before, when it has one; every role's version must
        be at least the floor (what the worker and the calling workflow have seen)."""
        newest = None
        if self.seen is not None:
            versions, newest = self.seen.read()
            self.floor = {role: max(self.floor.get(role, 0), versions.get(role, 0)) for role in {*self.floor, *versions}}
        try:
            root = Metadata.from_bytes(trusted_root)
            if not isinstance(root.signed, Root):
                raise ValueError("not a root")
            if newest is not None and (remembered := Metadata.from_bytes(newest)).signed.version > root.signed.version:
                root = remembered  # verified by this worker before: rotations are followed from there on
                trusted_root = newest
        except (RepositoryError, ValueError, KeyError, TypeError) as error:
            raise ApplicationError(f"the worker's trusted root for {self.store.repository.describe()}: "
                                   f"{type(error).__name__}", type="Untrusted", non_retryable=True) from None
        self.raw[Root.type] = trusted_root
        for _ in range(ROOT_ROTATIONS):
            name = f"{root.signed.version + 1}.root.json"
            found = self._get(name, ROOT_LIMIT)
            if found is None:
                break
            newer = self._verified(Root.type, name, found[0], root.signed)
            self._verified(Root.type, name, found[0], newer.signed)
            if newer.signed.version != root.signed.version + 1:
                raise self._untrusted(name, f"version {newer.signed.version}")
            root = newer
        else:
            raise self._untrusted("root", f"more than {ROOT_ROTATIONS} rotations")
        if root.signed.version < self.floor.get(Root.type, 0):
            raise self._untrusted(f"{root.signed.version}.root.json", f"the newest root is older than version "
                                  f"{self.floor[Root.type]} already seen: old metadata put back")
        self.metadata[Root.type] = root
        timestamp = self._get("timestamp.json", ROOT_LIMIT)
        if timestamp is None:
            raise ApplicationError(f"{self.store.repository.describe()} has no TUF repository: "
                                   "`rollout release init` first", type="InvalidTarget", non_retryable=True)
        self.metadata[Timestamp.type] = self._verified(Timestamp.type, "timestamp.json", timestamp[0], root.signed)
        self.timestamp_etag = timestamp[1]
        return self

    def _read(self, role: str) -> Metadata:
        if role == Snapshot.type:
            meta = self.metadata[Timestamp.type].signed.snapshot_meta
        else:
            meta = self.snapshot().meta.get(f"{role}.json")
            if meta is None:
                raise ApplicationError(f"{self.store.repository.describe()} has no role {role!r}", type="InvalidTarget",
                                       non_retryable=True)
        name = f"{meta.version}.{role}.json"
        found = self._get(name, meta.length or METADATA_LIMIT)
        if found is None:
            raise ApplicationError(f"{self.store.repository.describe()}: {name} is missing",
                                   type="InvalidTarget", non_retryable=True)
        delegator = self.root() if role in TOP_ROLES else self.targets()
        if role not in TOP_ROLES and (delegator.delegations is None or role not in (delegator.delegations.roles or {})):
            raise self._untrusted(name, "targets delegates no such role")
        return self._verified(role, name, found[0], delegator, meta)

    def open(self, role: str) -> Metadata:
        if role not in self.metadata:
            self.metadata[role] = self._read(role)
        return self.metadata[role]

    def create(self, role: str, signed: Root | Targets | Snapshot | Timestamp) -> None:
        """A role's first version (repository initialisation)."""
        self.metadata[role] = Metadata(signed)
        self.fresh.add(role)

    # ---- writing --------------------------------------------------------------------------------------

    def beat(self) -> None:
        """Long work inside a publish (hashing an artifact): the lease renewed, the activity heartbeating."""
        if self.lease is not None:
            self.lease.renew()
        if activity.in_activity():
            activity.heartbeat("hashing")

    def _lifetime(self, role: str) -> timedelta:
        e = self.expiry
        return {Timestamp.type: e.timestamp, Snapshot.type: e.snapshot, Root.type: timedelta(days=365),
                Targets.type: timedelta(days=365)}.get(role, e.channel)

    def _delegator(self, role: str) -> Root | Targets:
        return self.root() if role in TOP_ROLES else self.targets()

    def close(self, role: str, md: Metadata) -> None:
        if role in self.fresh:
            self.fresh.discard(role)
        else:
            md.signed.version = max(md.signed.version, self.floor.get(role, 0)) + 1  # above all ever seen
            if role == Timestamp.type:  # its signing time when higher: rising across workers, whatever they saw
                md.signed.version = max(md.signed.version, int(self.now.timestamp()))
            for _ in range(LEFTOVERS):
                if role == Timestamp.type or not self.store.exists("metadata", f"{md.signed.version}.{role}.json"):
                    break
                md.signed.version += 1  # a stopped publish left this version: skipped, never overwritten
            else:
                raise self._untrusted(role, f"more than {LEFTOVERS} unreferenced versions above the current one")
        md.signed.expires = (self.now + self._lifetime(role)).replace(microsecond=0)
        delegator = self._delegator(role) if role != Root.type else md.signed
        delegated = delegator.get_delegated_role(role)
        keys = [delegator.get_key(keyid) for keyid in delegated.keyids]
        md.signatures.clear()
        for signer in self.signers.for_keys(role, keys, delegated.threshold):
            md.sign(signer, append=True)
        self.metadata[role] = md
        self.staged[role] = md
        self.raw[role] = md.to_bytes(JSONSerializer(compact=False))

    def _meta(self, role: str) -> MetaFile:
        data = self.raw[role]
        return MetaFile(version=self.metadata[role].signed.version, length=len(data),
                        hashes={"sha256": hashlib.sha256(data).hexdigest()})

    @property
    def targets_infos(self) -> dict[str, MetaFile]:
        return {f"{role}.json": self._meta(role) for role, md in self.metadata.items() if isinstance(md.signed, Targets)}

    @property
    def snapshot_info(self) -> MetaFile:
        return self._meta(Snapshot.type)

    def commit(self) -> dict[str, int]:
        """Write what is staged in publish order (timestamp last, replacing only the one read).
        Returns role -> version written."""
        written = {}
        for role, md in sorted(self.staged.items(), key=lambda item: _rank(item[0])):
            data = self.raw[role]
            if self.lease is not None and (role == Timestamp.type or not written):
                self.lease.renew(check=True)  # still ours before the first write and before the commit point
            if role == Timestamp.type:
                self.store.put(data, "metadata", "timestamp.json", if_match=self.timestamp_etag)
            else:
                self.store.create(data, "metadata", f"{md.signed.version}.{role}.json")
                if role == Root.type:
                    self.store.put(data, "metadata", "root.json")
            written[role] = md.signed.version
        self.staged.clear()
        return written

    def versions(self) -> dict[str, int]:
        return {role: md.signed.version for role, md in self.metadata.items()}

    def remember(self) -> None:
        """Record what was verified or written (the versions, the root) in the worker's own state."""
        if self.seen is not None:
            root = self.metadata.get(Root.type)
            self.seen.record(self.versions(), self.raw.get(Root.type), root.signed.version if root else 0)
