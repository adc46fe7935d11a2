"""The S3 side of an updater repository: objects under `s3://bucket/prefix/`, and the publish lock.

Metadata writes of one repository are serialised by a lease object (`metadata/.publish-lock`, taken with
a conditional create, a stale one taken over with a conditional overwrite, renewed while publishing and
checked again before the commit): a publish reads the current metadata, writes new versioned files and
last the timestamp — the commit point — while it holds the lease. Versioned files are created only if
absent (`If-None-Match: *`): a file left by a publish that crashed before its timestamp is never
overwritten (the next publish takes a later version); the timestamp is replaced only if it is still the
one read (`If-Match`).

Artifacts: a blob is content-addressed (`blobs/<sha256>`), but anyone who can write to the bucket could
have written it, so its bytes are hashed before it is copied to the key devices fetch, the copy is made
only of the object that was hashed (`CopySourceIfMatch`; moto ignores it, real S3 enforces it), and the
copy is hashed again. Later phases find the copy there and compare its ETag with the blob's (no
download per phase); an object planted there is hashed and replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from botocore.exceptions import ClientError
from temporalio.exceptions import ApplicationError

from models.updater import Repository

LEASE_SECONDS = 60
RENEW_AFTER = 15  # seconds between renewals of a held lease
CHUNK = 1024 * 1024


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class TooLong(Exception):  # noqa: N818 - what it says: an object longer than the reader's bound
    """An object longer than the bound it was read with (read no further)."""


class RepositoryBusy(ApplicationError):
    def __init__(self, message: str) -> None:
        super().__init__(message, type="RepositoryBusy")  # retryable: the other publish ends soon


class Store:
    def __init__(self, s3: Any, repository: Repository) -> None:
        self.s3, self.repository, self.bucket = s3, repository, repository.bucket

    def key(self, *parts: str) -> str:
        return self.repository.key(*parts)

    def get(self, *parts: str, limit: int | None = None) -> tuple[bytes, str] | None:
        """(content, etag), or None when there is no such object. `limit`: an object longer than this many
        bytes is refused after reading only one byte past it (a bucket writer's giant file)."""
        try:
            answer = self.s3.get_object(Bucket=self.bucket, Key=self.key(*parts),
                                        **({"Range": f"bytes=0-{limit}"} if limit else {}))
        except ClientError as error:
            if _code(error) in ("NoSuchKey", "404"):
                return None
            if _code(error) == "NoSuchBucket":
                raise ApplicationError(f"no bucket {self.bucket}", type="InvalidTarget", non_retryable=True) from None
            raise
        body = answer["Body"].read()
        if limit is not None and len(body) > limit:
            raise TooLong(limit)
        return body, answer["ETag"]

    def exists(self, *parts: str) -> dict | None:
        try:
            return self.s3.head_object(Bucket=self.bucket, Key=self.key(*parts))
        except ClientError as error:
            if _code(error) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise

    def put(self, data: bytes, *parts: str, if_match: str | None = None, content_type: str = "application/json") -> None:
        extra = {"IfMatch": if_match} if if_match else {}
        try:
            self.s3.put_object(Bucket=self.bucket, Key=self.key(*parts), Body=data, ContentType=content_type,
                               CacheControl="no-cache", **extra)
        except ClientError as error:
            if _code(error) == "PreconditionFailed":
                raise RepositoryBusy(f"{self.key(*parts)} changed while publishing: another publish won") from None
            raise

    def create(self, data: bytes, *parts: str) -> None:
        """Write an object that must not exist yet (a versioned metadata file)."""
        try:
            self.s3.put_object(Bucket=self.bucket, Key=self.key(*parts), Body=data, ContentType="application/json",
                               CacheControl="no-cache", IfNoneMatch="*")
        except ClientError as error:
            if _code(error) in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise RepositoryBusy(f"{self.key(*parts)} appeared while publishing: another publish wrote it") from None
            raise

    def digest(self, parts: tuple[str, ...], beat: Callable[[], None]) -> tuple[str, int, str] | None:
        """(sha256, length, etag) of an object's bytes as S3 serves them, or None when it is missing."""
        try:
            answer = self.s3.get_object(Bucket=self.bucket, Key=self.key(*parts))
        except ClientError as error:
            if _code(error) in ("NoSuchKey", "404"):
                return None
            raise
        sha, length = hashlib.sha256(), 0
        for chunk in answer["Body"].iter_chunks(CHUNK):
            sha.update(chunk)
            length += len(chunk)
            beat()
        return sha.hexdigest(), length, answer["ETag"]

    def copy(self, source: tuple[str, ...], sha256: str, length: int, *parts: str,
             beat: Callable[[], None] = lambda: None) -> None:
        """Copy a blob server-side to `parts` once its bytes are the ones named (sha256 and length);
        skipped when the target already holds them."""
        wrong = lambda found: found is not None and found[:2] != (sha256, length)  # noqa: E731
        there = self.exists(*parts)
        if there is not None:  # the blob's head only then: a first publish of a version makes one request less
            head = self.exists(*source)
            if head is not None and there.get("ETag") == head.get("ETag") and there.get("ContentLength") == length:
                return  # the copy an earlier phase made (and hashed): the same object as the blob
            if not wrong(self.digest(parts, beat)):
                return  # a copy made otherwise (a multipart copy has its own ETag), with the right bytes
        blob = self.digest(source, beat)
        if blob is None:
            raise ApplicationError(f"s3://{self.bucket}/{self.key(*source)} is missing", type="InvalidTarget",
                                   non_retryable=True)
        if wrong(blob):
            raise ApplicationError(f"s3://{self.bucket}/{self.key(*source)}: its bytes are not the artifact "
                                   f"(sha256 {blob[0][:12]}…, {blob[1]} bytes): someone else wrote to the bucket; "
                                   "upload the artifact again", type="Untrusted", non_retryable=True)
        self.s3.copy({"Bucket": self.bucket, "Key": self.key(*source)}, self.bucket, self.key(*parts),
                     ExtraArgs={"CacheControl": "public, max-age=31536000, immutable", "CopySourceIfMatch": blob[2]})
        if wrong(self.digest(parts, beat)):  # replaced between the hash and the copy
            self.s3.delete_object(Bucket=self.bucket, Key=self.key(*parts))
            raise RepositoryBusy(f"{self.key(*parts)}: the copy is not the artifact (the blob changed while copying)")

    @contextlib.contextmanager
    def publish_lock(self, owner: str = "") -> Iterator[Lease]:
        """`owner`: who publishes (an activity's workflow and activity ID). A lease its earlier attempt left
        — Temporal retries an attempt only once it has timed out — is taken over at once."""
        lease = Lease(self, owner)
        lease.take()
        try:
            yield lease
        finally:
            lease.release()


class Lease:
    """The publish lease of one repository, held by one activity attempt."""

    def __init__(self, store: Store, owner: str) -> None:
        self.store, self.owner, self.token, self.renewed = store, owner, uuid.uuid4().hex, 0.0
        self.key = store.key("metadata", ".publish-lock")

    def _body(self) -> bytes:
        self.renewed = time.monotonic()
        return json.dumps({"token": self.token, "owner": self.owner, "until": time.time() + LEASE_SECONDS}).encode()

    def take(self) -> None:
        s3, bucket = self.store.s3, self.store.bucket
        try:
            s3.put_object(Bucket=bucket, Key=self.key, Body=self._body(), IfNoneMatch="*")
        except ClientError as error:
            if _code(error) not in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise
            held = self.store.get("metadata", ".publish-lock")
            if held is not None:
                lease = json.loads(held[0])
                earlier_attempt = bool(self.owner) and lease.get("owner") == self.owner
                if lease.get("until", 0) > time.time() and not earlier_attempt:
                    raise RepositoryBusy(f"{self.store.repository.describe()} is being published by another "
                                         "activity") from None
                self.store.put(self._body(), "metadata", ".publish-lock", if_match=held[1])  # stale, or ours
            else:
                s3.put_object(Bucket=bucket, Key=self.key, Body=self._body(), IfNoneMatch="*")

    def renew(self, check: bool = False) -> None:
        """Extend the lease (at most every RENEW_AFTER seconds unless `check`); a lease another publish took
        over — this one stalled past LEASE_SECONDS — stops this publish before it writes anything more."""
        if not check and time.monotonic() - self.renewed < RENEW_AFTER:
            return
        held = self.store.get("metadata", ".publish-lock")
        if held is None or json.loads(held[0]).get("token") != self.token:
            raise RepositoryBusy(f"{self.store.repository.describe()}: the publish lease was lost (this publish "
                                 f"stalled for over {LEASE_SECONDS} s); nothing more is written")
        self.store.put(self._body(), "metadata", ".publish-lock", if_match=held[1])

    def release(self) -> None:
        held = self.store.get("metadata", ".publish-lock")
        if held is not None and json.loads(held[0]).get("token") == self.token:
            self.store.s3.delete_object(Bucket=self.store.bucket, Key=self.key)
