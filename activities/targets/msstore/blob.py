"""The package's upload to the submission's Azure blob (the SAS `fileUploadUrl`: no bearer token), as
the Blob service's reference describes it. One Put Blob is limited by the service version the request is
served at — for a SAS link its signed version `sv`, or the `x-ms-version` header (Microsoft's pages
disagree which): 64 MiB before 2016-05-31 — so the zip always goes up in blocks (Put Block, 4 MiB each: within every version's
limit) committed with Put Block List. Each block's ID carries its index and its MD5, so after a crash the
blocks the blob already holds uncommitted (Get Block List) are not sent again; the committed blob records
the zip's MD5 (`x-ms-blob-content-md5`), which a HEAD compares before any byte is sent."""

from __future__ import annotations

import base64
import hashlib
import shutil
import tempfile
import xml.etree.ElementTree as ET  # noqa: S405 - the Blob service's own answers, parsed as data
import zipfile
from pathlib import Path
from typing import IO

from temporalio import activity

from activities.targets.storeapi import StoreApi

VERSION = "2019-12-12"  # stated on every call; by one reading a SAS link's `sv` decides all the same
BLOCK = 4 * 1024 * 1024
CHUNK = 1024 * 1024


def package_zip(path: Path) -> IO[bytes]:
    """The upload zip (the package at its root) in a temporary file, byte for byte the same for the same
    package; read in chunks, never whole into memory."""
    out = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller, closed there
    info = zipfile.ZipInfo(path.name, date_time=(2000, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(out, "w") as z, path.open("rb") as source, \
            z.open(info, "w", force_zip64=path.stat().st_size > zipfile.ZIP64_LIMIT) as target:
        shutil.copyfileobj(source, target, CHUNK)
    out.seek(0)
    return out


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324 - Azure's Content-MD5


def _with(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


def upload(api: StoreApi, url: str, content: IO[bytes]) -> bool:
    """The zip into the blob unless it holds these very bytes already; True when bytes were sent."""
    whole, blocks = hashlib.md5(), []  # noqa: S324
    content.seek(0)
    while chunk := content.read(BLOCK):
        whole.update(chunk)
        digest = hashlib.md5(chunk).hexdigest()  # noqa: S324
        blocks.append(base64.b64encode(f"{len(blocks):06d}-{digest}".encode()).decode())
    md5 = base64.b64encode(whole.digest()).decode()
    headers = {"x-ms-version": VERSION}
    head = api.call("HEAD", url, "the package blob", authorized=False, accept=(404,), headers=headers)
    if head.status_code == 200 and head.headers.get("content-md5") == md5:
        return False
    listed = api.call("GET", _with(url, "comp=blocklist&blocklisttype=uncommitted"), "the blob's blocks",
                      authorized=False, accept=(404,), headers=headers)
    have = set()
    if listed.status_code == 200 and listed.content:
        have = {name.text for name in ET.fromstring(listed.content).iter("Name")}  # noqa: S314
    content.seek(0)
    for index, block_id in enumerate(blocks):
        chunk = content.read(BLOCK)
        if block_id not in have:
            api.call("PUT", _with(url, f"comp=block&blockid={block_id}"), f"upload block {index + 1}/{len(blocks)}",
                     authorized=False, content=chunk, timeout=600,
                     headers={**headers, "Content-MD5": _md5(chunk), "Content-Type": "application/octet-stream"})
        activity.heartbeat(f"block {index + 1}/{len(blocks)}")
    listing = "".join(f"<Latest>{b}</Latest>" for b in blocks)
    api.call("PUT", _with(url, "comp=blocklist"), "commit the blocks", authorized=False, timeout=600,
             content=f'<?xml version="1.0" encoding="utf-8"?><BlockList>{listing}</BlockList>'.encode(),
             headers={**headers, "x-ms-blob-content-md5": md5, "x-ms-blob-content-type": "application/zip",
                      "Content-Type": "application/xml"})
    return True
