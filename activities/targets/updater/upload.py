"""Uploading an artifact: hashed, content-addressed (`blobs/<sha256>`), multipart for large files and
resumable — a retry after a crash finds the unfinished multipart upload and sends only the parts it
lacks. An artifact already there (same hash, same length) is not sent again."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import BinaryIO

from rollout_agent.cohort import SAFE_NAME
from temporalio.exceptions import ApplicationError

from activities.artifacts import open_artifact
from activities.targets.files import file_digest
from activities.targets.updater.store import Store
from models.updater import Artifact, UploadInput

PART_SIZE = 8 * 1024 * 1024  # S3's minimum part is 5 MiB
MULTIPART_FROM = 2 * PART_SIZE


def upload(store: Store, request: UploadInput, beat: Callable[[str], None]) -> Artifact:
    file, name = open_artifact(request.path)  # one descriptor: hashed and sent from the file that was checked
    with file:
        if not SAFE_NAME.fullmatch(name):
            raise ApplicationError(f"artifact.file {request.path}: devices accept only plain file names (letters, "
                                   "digits, and . _ + ~ - after the first; at most 128)", type="Invalid",
                                   non_retryable=True)
        sha256, length = file_digest(file, beat)
        artifact = Artifact(name=name, version=request.version, platform=request.platform, sha256=sha256,
                            length=length)
        head = store.exists("blobs", sha256)
        if head is not None and head.get("ContentLength") == length and \
                (store.digest(("blobs", sha256), lambda: beat("checking the blob")) or ("",))[0] == sha256:
            return artifact  # there, with these very bytes (a blob planted under the name is replaced)
        file.seek(0)
        if length < MULTIPART_FROM:
            store.put(file.read(), "blobs", sha256, content_type="application/octet-stream")
        else:
            _multipart(store, file, store.key("blobs", sha256), length, beat)
        return artifact


def _multipart(store: Store, file: BinaryIO, key: str, length: int, beat: Callable[[str], None]) -> None:
    s3, bucket = store.s3, store.bucket
    open_uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads", [])
    upload_id = next((u["UploadId"] for u in open_uploads if u["Key"] == key), None)
    done: dict[int, str] = {}
    if upload_id is None:
        upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType="application/octet-stream")["UploadId"]
    else:
        for page in s3.get_paginator("list_parts").paginate(Bucket=bucket, Key=key, UploadId=upload_id):
            done.update({p["PartNumber"]: p["ETag"] for p in page.get("Parts", []) if p["Size"] > 0})
    parts = (length + PART_SIZE - 1) // PART_SIZE
    for number in range(1, parts + 1):
        if number in done:
            continue
        file.seek((number - 1) * PART_SIZE)
        answer = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                Body=file.read(PART_SIZE))
        done[number] = answer["ETag"]
        beat(f"part {number}/{parts} of {os.path.basename(key)}")
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": done[n]} for n in sorted(done)]})
