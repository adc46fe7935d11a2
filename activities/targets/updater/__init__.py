"""The updater channel's activities: upload an artifact, publish a channel's release state (a promotion
publishes the artifact the channel before runs), read what the channel says, re-sign timestamp and
snapshot before they expire.

Every metadata change is one idempotent activity: it takes the publish lease, reads the current
metadata, stages the change (nothing when the channel already says it), and commits in TUF's order.
The S3 client comes from the constructor (one per endpoint); the signing keys and what the worker trusts
(each repository's trusted root and endpoint, the bounds of metadata expiry) are read here, from the
worker's environment (`$DURABLE_ROLLOUTS_TUF_SIGNERS`, `$DURABLE_ROLLOUTS_TUF_TRUST`), never from a workflow.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.targets.updater.channel import publish, read, refresh
from activities.targets.updater.repository import S3Repository
from activities.targets.updater.seen import Seen
from activities.targets.updater.signers import Signers
from activities.targets.updater.store import Lease, Store
from activities.targets.updater.trust import Trust
from activities.targets.updater.upload import upload
from models.updater import (
    Artifact,
    ChannelInput,
    ChannelRelease,
    Expiry,
    PublishInput,
    RefreshInput,
    RefreshResult,
    Repository,
    UploadInput,
)

S3For = Callable[[Repository], Any]  # the boto3 S3 client for a repository's endpoint


def _beat(detail: str) -> None:
    if activity.in_activity():
        activity.heartbeat(detail)


def _owner() -> str:
    """This activity, across its attempts (the publish lease's owner)."""
    if not activity.in_activity():
        return ""
    info = activity.info()
    return f"{info.workflow_id}/{info.workflow_run_id}/{info.activity_id}"


class UpdaterActivities:
    def __init__(self, s3_for: S3For, signers: Callable[[], Signers] = Signers.from_env,
                 trust: Callable[[], Trust] = Trust.from_env) -> None:
        self.s3_for, self.signers, self.trust = s3_for, signers, trust

    def _store(self, repository: Repository, trust: Trust | None = None) -> Store:
        """The repository's store, through the endpoint the worker's configuration names for it."""
        endpoint = (trust or self.trust()).of(repository).endpoint
        return Store(self.s3_for(repository.model_copy(update={"endpoint": endpoint})), repository)

    def _repository(self, store: Store, expiry: Expiry, lease: Lease | None = None,
                    floor: dict[str, int] | None = None, signers: Signers | None = None,
                    trust: Trust | None = None) -> S3Repository:
        trust = trust or self.trust()
        trust.check(expiry)
        anchor = trust.of(store.repository).root
        repository = S3Repository(store, signers or self.signers(), expiry, datetime.now(UTC), lease,
                                  Seen(store.repository, anchor), floor)
        repository.load(anchor)
        repository.remember()  # the state directory written before anything else is (and what was verified kept)
        return repository

    @activity.defn(name="upload_artifact")
    def upload_artifact(self, request: UploadInput) -> Artifact:
        with _s3_faults():
            return upload(self._store(request.repository), request, _beat)

    @activity.defn(name="publish_release")
    def publish_release(self, request: PublishInput) -> ChannelRelease:
        trust = self.trust()  # read once per activity: the trust file and the roots it names
        store = self._store(request.repository, trust)
        _beat("taking the publish lease")
        with _s3_faults(), store.publish_lock(_owner()) as lease:
            repository = self._repository(store, request.expiry, lease, request.seen, trust=trust)
            _beat(f"publishing {request.artifact.version} to {request.channel}")
            if publish(repository, request.channel, request.release, request.artifact, request.state,
                               request.previous):
                repository.commit()
            released = read(repository, request.channel, request.artifact.platform)
            repository.remember()
            return released

    @activity.defn(name="read_channel")
    def read_channel(self, request: ChannelInput) -> ChannelRelease:
        with _s3_faults():
            trust = self.trust()
            repository = self._repository(self._store(request.repository, trust), Expiry(), floor=request.seen,
                                          signers=Signers({}), trust=trust)
            released = read(repository, request.channel, request.platform)
            repository.remember()
            return released

    @activity.defn(name="refresh_timestamp")
    def refresh_timestamp(self, request: RefreshInput) -> RefreshResult:
        trust = self.trust()
        store = self._store(request.repository, trust)
        with _s3_faults(), store.publish_lock(_owner()) as lease:
            repository = self._repository(store, request.expiry, lease, trust=trust)
            resigned, expiring = refresh(repository, request.expiry, request.within_fraction)
            repository.commit()
            repository.remember()
            return RefreshResult(timestamp_version=repository.timestamp().version,
                                 snapshot_version=repository.snapshot().version, resigned=resigned,
                                 offline_expiring=expiring)


class _s3_faults:
    """S3's permanent answers (no bucket, access denied) fail the activity at once; the rest retry."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, trace) -> bool:  # type: ignore[no-untyped-def]
        if isinstance(error, ClientError):
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in ("AccessDenied", "NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
                hint = (" (S3 answers 403 for a missing key to a caller without s3:ListBucket: the worker needs it on "
                        "the repository's prefix)" if code in ("AccessDenied", "403") else "")
                raise ApplicationError(f"S3: {code}: {error.response.get('Error', {}).get('Message', '')}{hint}",
                                       type="InvalidTarget", non_retryable=True) from None
        if isinstance(error, BotoCoreError):
            raise ApplicationError(f"S3: {error}", type="S3Unavailable") from None
        return False
