"""A TUF repository in S3, edited with python-tuf's Metadata API (`tuf.repository.Repository`).

Consistent snapshots: every metadata file but the timestamp is written as `<version>.<role>.json` and
never changed; artifacts are `targets/<channel>/<platform>/<sha256>.<name>`. One change (a release's
new percentage, a halt, a rollback) stages a new version of the channel's role, then snapshot, then
timestamp, each re-signed by the keys the worker holds; `commit()` writes them in that order, the
timestamp — the one mutable object — last: a device sees the old release or the new one, never a mix.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio.exceptions import ApplicationError
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, Targets, Timestamp
from tuf.api.serialization.json import JSONSerializer
from tuf.repository import Repository

from activities.targets.updater.signers import Signers
from activities.targets.updater.store import Store
from models.updater import Expiry

TOP_ROLES = (Root.type, Targets.type, Snapshot.type, Timestamp.type)


def _rank(role: str) -> int:
    """Publish order: root, the delegated (channel) roles, targets, snapshot, timestamp last."""
    return {Root.type: 0, Targets.type: 2, Snapshot.type: 3, Timestamp.type: 4}.get(role, 1)


class S3Repository(Repository):
    def __init__(self, store: Store, signers: Signers, expiry: Expiry, now: datetime) -> None:
        self.store, self.signers, self.expiry, self.now = store, signers, expiry, now
        self.metadata: dict[str, Metadata] = {}
        self.staged: dict[str, Metadata] = {}
        self.timestamp_etag: str | None = None
        self.fresh: set[str] = set()  # created in this session (version 1, not bumped)

    # ---- reading --------------------------------------------------------------------------------------

    def load(self) -> S3Repository:
        root = self.store.get("metadata", "root.json")
        timestamp = self.store.get("metadata", "timestamp.json")
        if root is None or timestamp is None:
            raise ApplicationError(f"{self.store.repository.describe()} has no TUF repository: "
                                   "`rollout release init` first", type="InvalidTarget", non_retryable=True)
        self.metadata[Root.type] = Metadata.from_bytes(root[0])
        self.metadata[Timestamp.type] = Metadata.from_bytes(timestamp[0])
        self.timestamp_etag = timestamp[1]
        return self

    def _read(self, role: str) -> Metadata:
        if role == Snapshot.type:
            version = self.metadata[Timestamp.type].signed.snapshot_meta.version
        else:
            meta = self.snapshot().meta.get(f"{role}.json")
            if meta is None:
                raise ApplicationError(f"{self.store.repository.describe()} has no role {role!r}", type="InvalidTarget",
                                       non_retryable=True)
            version = meta.version
        found = self.store.get("metadata", f"{version}.{role}.json")
        if found is None:
            raise ApplicationError(f"{self.store.repository.describe()}: {version}.{role}.json is missing",
                                   type="InvalidTarget", non_retryable=True)
        return Metadata.from_bytes(found[0])

    def open(self, role: str) -> Metadata:
        if role not in self.metadata:
            self.metadata[role] = self._read(role)
        return self.metadata[role]

    def create(self, role: str, signed: Root | Targets | Snapshot | Timestamp) -> None:
        """A role's first version (repository initialisation)."""
        self.metadata[role] = Metadata(signed)
        self.fresh.add(role)

    # ---- writing --------------------------------------------------------------------------------------

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
            md.signed.version += 1
        md.signed.expires = (self.now + self._lifetime(role)).replace(microsecond=0)
        delegator = self._delegator(role) if role != Root.type else md.signed
        delegated = delegator.get_delegated_role(role)
        keys = [delegator.get_key(keyid) for keyid in delegated.keyids]
        md.signatures.clear()
        for signer in self.signers.for_keys(role, keys, delegated.threshold):
            md.sign(signer, append=True)
        self.metadata[role] = md
        self.staged[role] = md

    @property
    def targets_infos(self) -> dict[str, MetaFile]:
        return {f"{role}.json": MetaFile(version=md.signed.version) for role, md in self.metadata.items()
                if isinstance(md.signed, Targets)}

    @property
    def snapshot_info(self) -> MetaFile:
        return MetaFile(version=self.snapshot().version)

    def commit(self) -> dict[str, int]:
        """Write what is staged in publish order (timestamp last, replacing only the one read).
        Returns role -> version written."""
        written = {}
        for role, md in sorted(self.staged.items(), key=lambda item: _rank(item[0])):
            data = md.to_bytes(JSONSerializer(compact=False))
            if role == Timestamp.type:
                self.store.put(data, "metadata", "timestamp.json", if_match=self.timestamp_etag)
            else:
                self.store.put(data, "metadata", f"{md.signed.version}.{role}.json")
                if role == Root.type:
                    self.store.put(data, "metadata", "root.json")
            written[role] = md.signed.version
        self.staged.clear()
        return written

    def versions(self) -> dict[str, int]:
        return {role: md.signed.version for role, md in self.metadata.items()}
