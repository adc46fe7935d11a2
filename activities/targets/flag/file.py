"""A flag-definition file on disk (or a mounted volume): replaced atomically — written beside,
fsync'd, renamed — so an application's flagd provider reads the old definition or the new one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from models.flags import FlagChannel


class FileBackend:
    def where(self, channel: FlagChannel) -> str:
        return str(channel.file)

    def load(self, channel: FlagChannel) -> tuple[bytes | None, str]:
        path = Path(channel.file)
        return (path.read_bytes(), "") if path.exists() else (None, "")

    def save(self, channel: FlagChannel, data: bytes, token: str) -> None:
        path = Path(channel.file)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.remove(temporary)
            raise
