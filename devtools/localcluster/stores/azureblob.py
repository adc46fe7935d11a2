"""Azure Blob storage as a SAS link sees it (the stand-ins' upload targets), from the Blob service
reference: Put Blob, Put Block, Get Block List, Put Block List, HEAD (Get Blob Properties).

Limits follow the service version a request is served at. For a request authorized by a SAS the
references disagree: "Previous Azure Storage versions" says the SAS's `sv` alone decides ("If the
x-ms-version header is passed on the request, it's ignored"), "Versioning for Azure Storage" that the
header, when given, does. The stand-in takes the stricter reading: `sv` alone. One Put Blob holds at most 64 MiB before
2016-05-31, 256 MiB before 2019-12-12, 5000 MiB since; one block 4 MiB, 100 MiB, 4000 MiB. A block list
naming a block the blob does not hold is refused as Azure does (InvalidBlockList); Get Block List of a
blob that does not exist is 404 (BlobNotFound). Uncommitted blocks are dropped when a blob is committed.
A committed blob has a Content-MD5 only when the upload gave one (Put Blob's `Content-MD5`, or Put Block
List's `x-ms-blob-content-md5`): Azure computes none for a block list. The links carry `sp=rw`: the
permissions of Partner Center's links are not documented (reading the blob back needs `r`).
"""

from __future__ import annotations

import base64
import hashlib
import re
import xml.etree.ElementTree as ET  # noqa: S405 - the client's block list, parsed as data
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from localcluster.stores.standin import Reply, Request, Violation

MiB = 1024 * 1024
PUT_LIMITS = (("2016-05-31", 64 * MiB), ("2019-12-12", 256 * MiB), ("9999-12-31", 5000 * MiB))
BLOCK_LIMITS = (("2016-05-31", 4 * MiB), ("2019-12-12", 100 * MiB), ("9999-12-31", 4000 * MiB))


def _limit(version: str, limits: tuple[tuple[str, int], ...]) -> int:
    return next(limit for before, limit in limits if version < before)


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324 - Azure's Content-MD5


@dataclass
class Blob:
    data: bytes | None = None
    md5: str | None = None
    uncommitted: dict[str, bytes] = field(default_factory=dict)


@dataclass
class BlobService:
    sas_version: str = "2015-04-05"  # the `sv` of the links handed out (Partner Center's is not documented)
    blobs: dict[str, Blob] = field(default_factory=dict)
    puts: list[tuple[str, int]] = field(default_factory=list)  # (operation, bytes) per write, in order

    def link(self, base: str, name: str) -> str:
        return f"{base}/blobs/{name}?sv={self.sas_version}&sr=b&sp=rw&sig=x"

    def data(self, name: str) -> bytes | None:
        blob = self.blobs.get(name)
        return blob.data if blob else None

    def handle(self, name: str, request: Request) -> Reply:
        query = {k: v[-1] for k, v in parse_qs(request.query).items()}
        if query.get("sig") is None:
            return Reply(403, b"AuthenticationFailed")
        version = query.get("sv", self.sas_version)  # a SAS request's x-ms-version is ignored
        blob = self.blobs.setdefault(name, Blob())
        comp = query.get("comp")
        if request.method == "HEAD" and comp is None:
            if blob.data is None:
                return Reply(404)
            headers = {"x-ms-blob-type": "BlockBlob", "x-content-length": str(len(blob.data))}
            return Reply(200, None, {**headers, **({"content-md5": blob.md5} if blob.md5 else {})})
        if request.method == "PUT" and comp is None:
            return self.put_blob(blob, request, version)
        if request.method == "PUT" and comp == "block":
            return self.put_block(blob, request, query.get("blockid", ""), version)
        if request.method == "GET" and comp == "blocklist":
            if blob.data is None and not blob.uncommitted:
                return Reply(404, b"BlobNotFound: The specified blob does not exist.")
            names = "".join(f"<Block><Name>{k}</Name><Size>{len(v)}</Size></Block>" for k, v in blob.uncommitted.items())
            return Reply(200, f'<?xml version="1.0" encoding="utf-8"?><BlockList><CommittedBlocks/>'
                              f"<UncommittedBlocks>{names}</UncommittedBlocks></BlockList>".encode(),
                         {"content-type": "application/xml"})
        if request.method == "PUT" and comp == "blocklist":
            return self.put_block_list(blob, request)
        raise Violation(f"{request.method} blob ?comp={comp}: not a call the stand-in knows")

    def put_blob(self, blob: Blob, request: Request, version: str) -> Reply:
        if request.headers.get("x-ms-blob-type") != "BlockBlob":
            raise Violation("Put Blob: x-ms-blob-type must be BlockBlob")
        if len(request.body) > _limit(version, PUT_LIMITS):
            return Reply(413, b"RequestBodyTooLarge: the request body is too large and exceeds the maximum "
                              b"permissible limit")
        md5 = request.headers.get("content-md5")
        if md5 and md5 != _md5(request.body):
            return Reply(400, b"Md5Mismatch")
        blob.data, blob.md5, blob.uncommitted = request.body, md5 or _md5(request.body), {}
        self.puts.append(("blob", len(request.body)))
        return Reply(201)

    def put_block(self, blob: Blob, request: Request, block_id: str, version: str) -> Reply:
        try:
            raw = base64.b64decode(block_id, validate=True)
        except ValueError:
            return Reply(400, b"InvalidQueryParameterValue: blockid")
        if not raw or len(raw) > 64 or any(len(base64.b64decode(k)) != len(raw) for k in blob.uncommitted):
            return Reply(400, b"InvalidBlobOrBlock: block IDs must be at most 64 bytes, all of one length")
        if len(request.body) > _limit(version, BLOCK_LIMITS):
            return Reply(413, b"RequestBodyTooLarge")
        md5 = request.headers.get("content-md5")
        if md5 and md5 != _md5(request.body):
            return Reply(400, b"Md5Mismatch")
        blob.uncommitted[block_id] = request.body
        self.puts.append(("block", len(request.body)))
        return Reply(201)

    def put_block_list(self, blob: Blob, request: Request) -> Reply:
        try:
            root = ET.fromstring(request.body)  # noqa: S314
        except ET.ParseError:
            return Reply(400, b"InvalidXmlDocument")
        if root.tag != "BlockList" or any(e.tag not in ("Latest", "Uncommitted", "Committed") for e in root):
            return Reply(400, b"InvalidXmlDocument")
        ids = [(e.text or "").strip() for e in root]
        if any(i not in blob.uncommitted for i in ids):
            return Reply(400, b"InvalidBlockList: a block named is not among the blob's blocks")
        blob.data = b"".join(blob.uncommitted[i] for i in ids)
        md5 = request.headers.get("x-ms-blob-content-md5")
        if md5 and not re.fullmatch(r"[A-Za-z0-9+/]{22}==", md5):
            return Reply(400, b"InvalidHeaderValue: x-ms-blob-content-md5")
        blob.md5, blob.uncommitted = md5, {}
        self.puts.append(("blocklist", len(blob.data)))
        return Reply(201)
