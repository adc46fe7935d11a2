"""The S3 side of an updater repository: objects under `s3://bucket/prefix/`, and the publish lock.

Metadata writes of one repository are serialised by a lease object (`metadata/.publish-lock`, taken with
a conditional create, a stale one taken over with a conditional overwrite): a publish reads the current
metadata, writes new versioned files and last the timestamp — the commit point — while it holds the
lease. Versioned files left by a publish that crashed before its timestamp are unreferenced and are
overwritten by the next one; the timestamp itself is replaced only if it is still the one read.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError
from temporalio.exceptions import ApplicationError

from models.updater import Repository

LEASE_SECONDS = 60


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class RepositoryBusy(ApplicationError):
    def __init__(self, message: str) -> None:
        super().__init__(message, type="RepositoryBusy")  # retryable: the other publish ends soon


class Store:
    def __init__(self, s3: Any, repository: Repository) -> None:
        self.s3, self.repository, self.bucket = s3, repository, repository.bucket

    def key(self, *parts: str) -> str:
        return self.repository.key(*parts)

    def get(self, *parts: str) -> tuple[bytes, str] | None:
        """(content, etag), or None when there is no such object."""
        try:
            answer = self.s3.get_object(Bucket=self.bucket, Key=self.key(*parts))
        except ClientError as error:
            if _code(error) in ("NoSuchKey", "404"):
                return None
            if _code(error) == "NoSuchBucket":
                raise ApplicationError(f"no bucket {self.bucket}", type="InvalidTarget", non_retryable=True) from None
            raise
        return answer["Body"].read(), answer["ETag"]

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

    def copy(self, source: tuple[str, ...], *parts: str) -> None:
        """A server-side copy (the same bytes, no upload), skipped when the target already has them."""
        head = self.exists(*source)
        if head is None:
            raise ApplicationError(f"s3://{self.bucket}/{self.key(*source)} is missing", type="InvalidTarget",
                                   non_retryable=True)
        there = self.exists(*parts)
        if there is not None and there.get("ETag") == head.get("ETag"):
            return
        self.s3.copy({"Bucket": self.bucket, "Key": self.key(*source)}, self.bucket, self.key(*parts),
                     ExtraArgs={"CacheControl": "public, max-age=31536000, immutable"})

    @contextlib.contextmanager
    def publish_lock(self, owner: str = "") -> Iterator[None]:
        """`owner`: who publishes (an activity's workflow and activity ID). A lease its earlier attempt left
        — Temporal retries an attempt only once it has timed out — is taken over at once."""
        token = uuid.uuid4().hex
        body = lambda: json.dumps({"token": token, "owner": owner, "until": time.time() + LEASE_SECONDS}).encode()  # noqa: E731
        key = self.key("metadata", ".publish-lock")
        try:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body(), IfNoneMatch="*")
        except ClientError as error:
            if _code(error) not in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise
            held = self.get("metadata", ".publish-lock")
            if held is not None:
                lease = json.loads(held[0])
                earlier_attempt = bool(owner) and lease.get("owner") == owner
                if lease.get("until", 0) > time.time() and not earlier_attempt:
                    raise RepositoryBusy(f"{self.repository.describe()} is being published by another "
                                         "activity") from None
                self.put(body(), "metadata", ".publish-lock", if_match=held[1])  # stale, or ours: taken over
            else:
                self.s3.put_object(Bucket=self.bucket, Key=key, Body=body(), IfNoneMatch="*")
        try:
            yield
        finally:
            held = self.get("metadata", ".publish-lock")
            if held is not None and json.loads(held[0]).get("token") == token:
                self.s3.delete_object(Bucket=self.bucket, Key=key)
