"""Files on the worker's disk that a channel publishes: their sha256 read in blocks (a large artifact or
bundle heartbeats while it is hashed)."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

BLOCK = 8 * 1024 * 1024


def file_digest(path: Path | BinaryIO, beat: Callable[[str], None] = lambda _: None) -> tuple[str, int]:
    """(sha256 hex, length) of the file (a path, or an open file read from its start), calling `beat`
    after each block."""
    digest, length = hashlib.sha256(), 0
    with contextlib.nullcontext(path) if hasattr(path, "read") else open(path, "rb") as file:
        file.seek(0)
        for block in iter(lambda: file.read(BLOCK), b""):
            digest.update(block)
            length += len(block)
            beat(f"hashing {length} bytes")
    return digest.hexdigest(), length
