"""Install on the device: back up, stage, swap atomically, check health, restore on failure.

The install directory holds `versions/<version>/` (an artifact unpacked: a `.tar.gz` is extracted with
the `data` filter, any other file is placed as it is), `current` (a symlink to the running version,
replaced with one `rename`, so a crash leaves either the old or the new one in place) and `backup/`
(a copy of the running version and its tree digest, taken before anything changes). After a failed
install or health check `current` points at the previous version again, whose tree is checked against
the backup's digest and restored from the copy when it differs: byte for byte what ran before.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path


class InstallFailed(Exception):
    """The new version could not be put in place (the previous one runs again)."""


class HealthFailed(Exception):
    """The new version is in place but its health command failed (the previous one runs again)."""


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
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.versions, self.current, self.backup = self.root / "versions", self.root / "current", self.root / "backup"

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
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def back_up(self) -> str:
        """Copy the running version to backup/ with its digest (before anything changes)."""
        running = self.installed_version()
        if not running:
            return ""
        source = self.versions / running
        digest = tree_digest(source)
        manifest = self.backup / "manifest.json"
        if manifest.exists() and json.loads(manifest.read_text()) == {"version": running, "digest": digest}:
            return running  # already backed up (an earlier, interrupted attempt)
        if self.backup.exists():
            shutil.rmtree(self.backup)
        shutil.copytree(source, self.backup / running, symlinks=True)
        manifest.write_text(json.dumps({"version": running, "digest": digest}))
        return running

    def _stage(self, artifact: Path, version: str, name: str) -> Path:
        staging = self.versions / f".{version}.staging"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        try:
            if name.endswith((".tar.gz", ".tgz", ".tar")):
                with tarfile.open(artifact) as archive:
                    archive.extractall(staging, filter="data")
            else:
                shutil.copy2(artifact, staging / name)
        except (tarfile.TarError, OSError, EOFError) as error:
            shutil.rmtree(staging, ignore_errors=True)
            raise InstallFailed(f"unpacking {name}: {error}") from error
        final = self.versions / version
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
        return final

    def restore(self, previous: str, failed: str) -> str:
        """`current` back on `previous`, its tree as the backup recorded it; the failed version removed."""
        if previous:
            manifest = json.loads((self.backup / "manifest.json").read_text())
            kept = self.versions / previous
            if not kept.exists() or tree_digest(kept) != manifest["digest"]:
                shutil.rmtree(kept, ignore_errors=True)
                shutil.copytree(self.backup / previous, kept, symlinks=True)
            self._swap(previous)
        elif self.current.is_symlink():
            self.current.unlink()
        if failed != previous:
            shutil.rmtree(self.versions / failed, ignore_errors=True)
        return previous

    def install(self, artifact: Path, version: str, name: str, health: list[str] | None,
                health_timeout: float) -> Outcome:
        previous = self.back_up()
        try:
            self._stage(artifact, version, name)
        except InstallFailed as failed:
            return Outcome(version, False, "install-failed", str(failed))
        self._swap(version)
        problem = self._health(health, health_timeout, version) if health else ""
        if problem:
            self.restore(previous, version)
            return Outcome(version, False, "health-failed", problem)
        return Outcome(version, True, "installed", f"{previous or 'nothing'} -> {version}")

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
