"""Install on the device: back up, stage, swap atomically, check health, restore on failure.

The install directory holds `versions/<version>/` (an artifact unpacked: a `.tar.gz` is extracted with
the `data` filter, any other file is placed as it is), `current` (a symlink to the running version,
replaced with one `rename`, so a crash leaves either the old or the new one in place) and `backup/`
(a copy of the running version and its tree digest, taken before anything changes; a new backup is
complete before it replaces the old one). After a failed install or health check `current` points at the
previous version again, whose tree is checked against the backup's digest and restored from the copy
when it differs: byte for byte what ran before.

Crash safety: the unpacked files and their directories are fsynced before `current` moves, and
`pending.json` (fsynced) records the install from just before the swap until its health check passed:
an agent that finds it on its next start (the device lost power during the check) restores the previous
version and records the new one as failed (`recover`). An archive is refused, not rewritten, when a
member's path is absolute or climbs out (`..`), and when it holds more members or bytes than the limits.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class InstallFailed(Exception):
    """The new version could not be put in place (the previous one runs again)."""


class HealthFailed(Exception):
    """The new version is in place but its health command failed (the previous one runs again)."""


@dataclass
class Limits:
    """What an archive may unpack to (a signed artifact is trusted for its bytes, not for its shape)."""

    members: int = 100_000
    unpacked_bytes: int = 8 * 1024**3


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, record: dict) -> None:
    """`record` as JSON at `path`: written beside, fsynced, renamed over, the directory fsynced."""
    staged = path.with_name(path.name + ".new")
    with open(staged, "w") as file:
        json.dump(record, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(staged, path)
    _fsync(path.parent)


def _fsync_tree(root: Path) -> None:
    for directory, _, files in os.walk(root):
        for name in files:
            if not os.path.islink(os.path.join(directory, name)):
                _fsync(Path(directory) / name)
        _fsync(Path(directory))


EXTENDED_HEADER_LIMIT = 1024 * 1024  # a pax or GNU long-name header tarfile would read whole into memory


def _check_headers(path: Path, limits: Limits) -> None:
    """Walk the raw 512-byte headers before tarfile parses any: an extended header (pax `x`/`g`, GNU
    `L`/`K`) bigger than EXTENDED_HEADER_LIMIT — which tarfile reads whole into memory — is refused, and
    the walk stops after `limits.members` headers."""
    with open(path, "rb") as head:
        opener = gzip.open if head.read(2) == b"\x1f\x8b" else open
    with opener(path, "rb") as raw:
        for _ in range(2 * limits.members + 2):  # extended headers come in pairs with their member
            block = raw.read(512)
            if len(block) < 512 or block == bytes(512):
                return
            try:
                size = tarfile.nti(block[124:136])
            except tarfile.InvalidHeaderError:
                raise InstallFailed("not a tar archive") from None
            if block[156:157] in (b"x", b"g", b"L", b"K") and size > EXTENDED_HEADER_LIMIT:
                raise InstallFailed(f"an extended header of {size} bytes")
            if size < 0 or size > limits.unpacked_bytes:
                raise InstallFailed(f"unpacks to more than {limits.unpacked_bytes} bytes")
            raw.seek(raw.tell() + (size + 511) // 512 * 512)


def _check_members(archive: tarfile.TarFile, limits: Limits) -> None:
    total = 0
    for count, member in enumerate(archive, 1):
        total += member.size if member.isfile() else 0
        name = member.name.replace("\\", "/")
        if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
            raise InstallFailed(f"member {member.name!r}: an absolute path")
        if ".." in name.split("/"):
            raise InstallFailed(f"member {member.name!r}: climbs out of the install directory")
        if member.issym() or member.islnk():
            target = member.linkname.replace("\\", "/")
            if target.startswith("/") or ".." in target.split("/"):
                raise InstallFailed(f"member {member.name!r}: a link to {member.linkname!r} outside the archive")
        if count > limits.members:
            raise InstallFailed(f"more than {limits.members} members")
        if total > limits.unpacked_bytes:
            raise InstallFailed(f"unpacks to more than {limits.unpacked_bytes} bytes")


def tree_digest(root: Path) -> str:
    """sha256 over every file's relative path, mode bit for executables and content."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(b"x" if os.access(path, os.X_OK) else b"-")
        with open(path, "rb") as file:
            for block in iter(lambda f=file: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


@dataclass
class Outcome:
    version: str
    ok: bool
    stage: str  # installed | install-failed | health-failed
    message: str = ""


class Installation:
    def __init__(self, root: str | Path, limits: Limits | None = None) -> None:
        self.root, self.limits = Path(root), limits or Limits()
        self.versions, self.current, self.backup = self.root / "versions", self.root / "current", self.root / "backup"
        self.pending = self.root / "pending.json"

    def installed_version(self) -> str:
        if not self.current.is_symlink():
            return ""
        return Path(os.readlink(self.current)).name

    def _swap(self, version: str) -> None:
        link = self.root / "current.swap"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path("versions") / version)
        os.replace(link, self.current)
        _fsync(self.root)

    def _complete_backup(self) -> Path:
        """backup/, or backup.old/ when a crash came between the two renames that replace it."""
        old = self.root / "backup.old"
        if not self.backup.exists() and old.exists():
            os.replace(old, self.backup)
        return self.backup

    def back_up(self) -> str:
        """Copy the running version to backup/ with its digest (before anything changes)."""
        running = self.installed_version()
        if not running:
            return ""
        source = self.versions / running
        digest = tree_digest(source)
        manifest = self._complete_backup() / "manifest.json"
        if manifest.exists() and json.loads(manifest.read_text()) == {"version": running, "digest": digest}:
            return running  # already backed up (an earlier, interrupted attempt)
        new, old = self.root / "backup.new", self.root / "backup.old"
        shutil.rmtree(new, ignore_errors=True)
        shutil.copytree(source, new / running, symlinks=True)
        (new / "manifest.json").write_text(json.dumps({"version": running, "digest": digest}))
        _fsync_tree(new)
        shutil.rmtree(old, ignore_errors=True)
        if self.backup.exists():
            os.replace(self.backup, old)  # the old backup stays until the new one is in place
        os.replace(new, self.backup)
        _fsync(self.root)
        shutil.rmtree(old, ignore_errors=True)
        return running

    def _stage(self, artifact: Path, version: str, name: str) -> Path:
        staging = self.versions / f".{version}.staging"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        try:
            if name.endswith((".tar.gz", ".tgz", ".tar")):
                _check_headers(artifact, self.limits)
                with tarfile.open(artifact) as archive:
                    _check_members(archive, self.limits)
                    archive.extractall(staging, filter="data")
            else:
                shutil.copy2(artifact, staging / name)
            _fsync_tree(staging)
        except InstallFailed as refused:
            shutil.rmtree(staging, ignore_errors=True)
            raise InstallFailed(f"unpacking {name}: {refused}") from None
        except (tarfile.TarError, OSError, EOFError) as error:
            shutil.rmtree(staging, ignore_errors=True)
            raise InstallFailed(f"unpacking {name}: {error}") from error
        final = self.versions / version
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
        _fsync(self.versions)
        return final

    def restore(self, previous: str, failed: str) -> str:
        """`current` back on `previous`, its tree as the backup recorded it; the failed version removed."""
        if previous:
            manifest = json.loads((self._complete_backup() / "manifest.json").read_text())
            kept = self.versions / previous
            if not kept.exists() or tree_digest(kept) != manifest["digest"]:
                shutil.rmtree(kept, ignore_errors=True)
                shutil.copytree(self.backup / previous, kept, symlinks=True)
                _fsync_tree(kept)
                _fsync(self.versions)
            self._swap(previous)
        elif self.current.is_symlink():
            self.current.unlink()
        if failed != previous:
            shutil.rmtree(self.versions / failed, ignore_errors=True)
        return previous

    def install(self, artifact: Path, version: str, name: str, health: list[str] | None,
                health_timeout: float, digest: str = "") -> Outcome:
        previous = self.back_up()
        try:
            self._stage(artifact, version, name)
        except InstallFailed as failed:
            return Outcome(version, False, "install-failed", str(failed))
        write_durably(self.pending, {"version": version, "previous": previous, "sha256": digest})
        self._swap(version)
        problem = self._health(health, health_timeout, version) if health else ""
        if problem:
            self.restore(previous, version)
            self._clear_pending()
            return Outcome(version, False, "health-failed", problem)
        self._clear_pending()
        return Outcome(version, True, "installed", f"{previous or 'nothing'} -> {version}")

    def _clear_pending(self) -> None:
        if self.pending.exists():
            self.pending.unlink()
            _fsync(self.root)

    def recover(self, record_failed: Callable[[str, str], None]) -> Outcome | None:
        """An install whose health check never finished (the agent or the device died during it): the
        previous version restored, `record_failed(version, sha256)` called — before the record of the
        pending install goes, so a crash in between repeats the recovery instead of losing it — and the
        outcome a failed health check."""
        if not self.pending.exists():
            return None
        try:
            record = json.loads(self.pending.read_text())
            version, previous = str(record["version"]), str(record["previous"])
        except (ValueError, KeyError, TypeError):
            self._clear_pending()  # written before the swap: unreadable means the swap never happened
            return None
        self.restore(previous, version)  # also when the check had passed but was not yet recorded: cautious
        record_failed(version, str(record.get("sha256", "")))
        self._clear_pending()
        return Outcome(version, False, "health-failed", f"interrupted during its health check: "
                                                        f"{previous or 'nothing'} restored")

    def _health(self, command: list[str], timeout: float, version: str) -> str:
        env = {**os.environ, "ROLLOUT_AGENT_VERSION": version, "ROLLOUT_AGENT_CURRENT": str(self.current)}
        try:
            done = subprocess.run(command, cwd=self.root, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return f"health command took longer than {timeout:g}s"
        except OSError as error:
            return f"health command could not run: {error}"
        if done.returncode != 0:
            return f"health command exited {done.returncode}: {(done.stderr or done.stdout).strip()[-200:]}"
        return ""
