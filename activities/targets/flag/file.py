"""A flag-definition file on disk (or a mounted volume), replaced by compare-and-swap: under an
exclusive `flock` on a lock file beside it (`.<name>.lock`, beside a symlink's target), the file must
still hold what was read (its sha256 is the version token), else the write is refused (retryably) and
the store reads again — two Releases ramping two flags in one file lose nothing. The lock is waited for
`LOCK_WAIT` seconds at most (heartbeating inside an activity), then the write is refused retryably;
the lock file is opened without following a symlink. The new content is written beside
(`.<name>.<random>.flagtmp`; one a crash left, older than a minute, is removed by the next write),
fsync'd, given the old file's mode and owner, renamed over it and the directory fsync'd, so an
application's flagd provider reads the old definition or the new one and a crash keeps one of them. A
symlink is followed: its target is replaced, the link stays. A path the worker cannot use (a directory,
no permission) is a permanent error naming it.

The lock and the check hold between the processes of one machine (and on a shared volume whose
filesystem honours `flock`); a file on one worker's own disk is that worker's: with several workers
on the queue, each would ramp its own copy. Give the file store a shared volume, or one worker.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import hashlib
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.targets.flag.store import CONFLICT
from models.flags import FlagChannel

LOCK_WAIT = 10.0  # seconds a write waits for another writer's lock before it is refused (retryably)
TEMPORARY = ".flagtmp"  # the suffix of the new content written beside the file
STALE = 60.0  # seconds after which a temporary file is a crash's leftover


def _version(data: bytes | None) -> str:
    return "" if data is None else hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def _usable(path: Path) -> Iterator[None]:
    """An OSError that waiting will not cure (a directory, no permission, a symlink loop) is permanent."""
    try:
        yield
    except (PermissionError, IsADirectoryError, NotADirectoryError) as error:
        raise ApplicationError(f"{error.filename or path}: {error.strerror}", type="Invalid",
                               non_retryable=True) from None
    except OSError as error:
        if error.errno != errno.ELOOP:
            raise
        raise ApplicationError(f"{error.filename or path}: a symlink (not followed)", type="Invalid",
                               non_retryable=True) from None


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive flock on `.<name>.lock`, waited for `LOCK_WAIT` seconds at most."""
    lock = os.open(path.parent / f".{path.name}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ApplicationError(f"{path}: another writer held its lock for {LOCK_WAIT:g}s: retried",
                                           type=CONFLICT) from None
                if activity.in_activity():
                    activity.heartbeat(f"waiting for the lock on {path}")
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    finally:
        os.close(lock)


def _remove_stale(path: Path) -> None:
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*{TEMPORARY}"):
        with contextlib.suppress(FileNotFoundError):
            if time.time() - leftover.lstat().st_mtime > STALE:
                leftover.unlink()


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
        with _usable(Path(channel.file)):
            data = _read(Path(channel.file))
        return data, _version(data)

    def save(self, channel: FlagChannel, data: bytes, token: str) -> None:
        path = Path(os.path.realpath(channel.file))  # a symlink's target; the link itself stays
        with _usable(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            with _locked(path):
                if _version(_read(path)) != token:
                    raise ApplicationError(f"{self.where(channel)} changed while writing: retried", type=CONFLICT)
                _remove_stale(path)
                self._replace(path, data)

    @staticmethod
    def _replace(path: Path, data: bytes) -> None:
        old = path.stat() if path.exists() else None
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fchmod(out.fileno(), stat.S_IMODE(old.st_mode) if old else 0o644)
                if old and (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
                    try:
                        os.fchown(out.fileno(), old.st_uid, old.st_gid)
                    except PermissionError:
                        raise ApplicationError(
                            f"{path}: owned by {old.st_uid}:{old.st_gid}, which this worker cannot give the new "
                            "content (run it as that user, or with CAP_CHOWN)", type="Invalid",
                            non_retryable=True) from None
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.remove(temporary)
            raise
        _fsync_directory(path.parent)
