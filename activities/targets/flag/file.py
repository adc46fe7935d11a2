"""A flag-definition file on disk (or a mounted volume), replaced by compare-and-swap: under an
exclusive `flock` on a lock file beside it (`.<name>.lock`), the file must still hold what was read
(its sha256 is the version token), else the write is refused (retryably) and the store reads again —
two Releases ramping two flags in one file lose nothing. The new content is written beside, fsync'd,
given the old file's mode, renamed over it and the directory fsync'd, so an application's flagd
provider reads the old definition or the new one and a crash keeps one of them. A symlink is
followed: its target is replaced, the link stays.

The lock and the check hold between the processes of one machine (and on a shared volume whose
filesystem honours `flock`); a file on one worker's own disk is that worker's: with several workers
on the queue, each would ramp its own copy. Give the file store a shared volume, or one worker.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from temporalio.exceptions import ApplicationError

from activities.targets.flag.store import CONFLICT
from models.flags import FlagChannel


def _version(data: bytes | None) -> str:
    return "" if data is None else hashlib.sha256(data).hexdigest()


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path.parent / f".{path.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _fsync_directory(directory: Path) -> None:
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


class FileBackend:
    def where(self, channel: FlagChannel) -> str:
        return str(channel.file)

    def load(self, channel: FlagChannel) -> tuple[bytes | None, str]:
        data = _read(Path(channel.file))
        return data, _version(data)

    def save(self, channel: FlagChannel, data: bytes, token: str) -> None:
        path = Path(os.path.realpath(channel.file))  # a symlink's target; the link itself stays
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path):
            if _version(_read(path)) != token:
                raise ApplicationError(f"{self.where(channel)} changed while writing: retried", type=CONFLICT)
            mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o644
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            try:
                with os.fdopen(handle, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.chmod(temporary, mode)
                os.replace(temporary, path)
            except BaseException:
                if os.path.exists(temporary):
                    os.remove(temporary)
                raise
            _fsync_directory(path.parent)
