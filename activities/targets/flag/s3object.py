"""A flag-definition document kept as an S3 object (applications sync it to the file their flagd
provider reads). Replaced only if it is still the version read: the PUT carries `If-Match: <ETag read>`
(or `If-None-Match: *` for a new object), and the store relies on S3 refusing it (412
PreconditionFailed, or 409 ConditionalRequestConflict) when another writer got there first — the loser
re-reads and retries. A store without conditional writes would silently lose a racing change. A key
that does not exist is answered 404 — or 403 AccessDenied when the worker may not list the bucket
(no `s3:ListBucket`), which counts as "no document yet" only with `deniedIsMissing: true`; if the
object is there after all (the GET was denied for another reason), the PUT with `If-None-Match: *` is
answered 412, and that is a permanent error naming AccessDenied, not a race to retry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError
from temporalio.exceptions import ApplicationError

from activities.targets.flag.store import CONFLICT
from models.flags import FlagChannel, FlagObject

DENIED = "denied"  # the version token of a key whose GET was AccessDenied and taken as missing


class S3ObjectBackend:
    def __init__(self, s3_for: Callable[[FlagObject], Any]) -> None:
        self.s3_for = s3_for

    def where(self, channel: FlagChannel) -> str:
        return f"s3://{channel.s3.bucket}/{channel.s3.key}"

    def load(self, channel: FlagChannel) -> tuple[bytes | None, str]:
        o = channel.s3
        try:
            answer = self.s3_for(o).get_object(Bucket=o.bucket, Key=o.key)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404"):
                return None, ""
            if o.denied_is_missing and code in ("AccessDenied", "403"):
                return None, DENIED
            if code in ("NoSuchBucket", "AccessDenied", "403"):
                raise ApplicationError(f"{self.where(channel)}: {code}", type="InvalidTarget", non_retryable=True) from None
            raise
        return answer["Body"].read(), answer["ETag"]

    def save(self, channel: FlagChannel, data: bytes, token: str) -> None:
        o = channel.s3
        condition = {"IfMatch": token} if token not in ("", DENIED) else {"IfNoneMatch": "*"}
        try:
            self.s3_for(o).put_object(Bucket=o.bucket, Key=o.key, Body=data, ContentType="application/json",
                                      CacheControl="no-cache", **condition)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == "PreconditionFailed" and token == DENIED:
                raise ApplicationError(f"{self.where(channel)}: GET was AccessDenied (taken as missing: "
                                       "deniedIsMissing) but the object exists (PUT If-None-Match: * answered 412): "
                                       "give the worker s3:GetObject on it", type="InvalidTarget",
                                       non_retryable=True) from None
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise ApplicationError(f"{self.where(channel)} changed while writing: retried",
                                       type=CONFLICT) from None
            raise
