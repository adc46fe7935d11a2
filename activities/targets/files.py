"""Files on the worker's disk that a channel publishes: their sha256 read in blocks (a large artifact or
bundle heartbeats while it is hashed)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

BLOCK = 8 * 1024 * 1024


def file_digest(path: Path, beat: Callable[[str], None] = lambda _: None) -> tuple[str, int]:
    """(sha256 hex, length) of the file, calling `beat` after each block."""
    digest, length = hashlib.sha256(), 0
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(BLOCK), b""):
            digest.update(block)
            length += len(block)
            beat(f"hashing {length} bytes")
    return digest.hexdigest(), length
