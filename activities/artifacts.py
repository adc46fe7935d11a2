"""The artifact files a Release names (`spec.artifact.file`), read only where the worker's configuration
allows: a Release author chooses a file *inside* the artifact roots, never any path on the worker (its
signing keys, `/proc/self/environ`, a device that never ends). A root over system files or a home directory is refused.

`$DURABLE_ROLLOUTS_ARTIFACT_ROOTS`: directories, separated by `:` (CI drops builds there, or a volume
holds them). Unset: the worker reads no artifact file (channels that publish what another channel runs,
promotions, need none). A path is resolved (symlinks followed) before it is checked, so a link inside a
root that points out of it is refused; it must be a regular file. Every file the worker's configuration
names (`$DURABLE_ROLLOUTS_*` that name a file but the allowlists, the TUF signers file and each key it lists, the AWS and
Google credential files) is a secret: an artifact in the directory holding one is refused; and a worker
whose artifact root holds its TUF signing keys does not start (`check_roots`).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import BinaryIO

from temporalio.exceptions import ApplicationError

ROOTS_VARIABLE = "DURABLE_ROLLOUTS_ARTIFACT_ROOTS"
NOT_SECRET = {ROOTS_VARIABLE, "DURABLE_ROLLOUTS_FLAG_STORES", "DURABLE_ROLLOUTS_KILL_PLAN"}  # allowlists, the test harness
CREDENTIAL_VARIABLES = ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "GOOGLE_APPLICATION_CREDENTIALS")


def _refuse(message: str) -> ApplicationError:
    return ApplicationError(message, type="Invalid", non_retryable=True)


def roots() -> list[Path]:
    return [Path(os.path.realpath(p)) for p in os.environ.get(ROOTS_VARIABLE, "").split(os.pathsep) if p.strip()]


def secret_paths() -> list[Path]:
    """The files the worker's configuration names, and the key files its TUF signers file lists."""
    named = [value for name, value in os.environ.items()
             if (name.startswith("DURABLE_ROLLOUTS_") and name not in NOT_SECRET) or name in CREDENTIAL_VARIABLES]
    return sorted({Path(os.path.realpath(v)) for v in named if v and os.path.isfile(v)} | set(signing_keys()))


def signing_keys() -> list[Path]:
    """The TUF signers file, the trust file and every key file the signers file lists."""
    found = {Path(os.path.realpath(os.environ[v])) for v in ("DURABLE_ROLLOUTS_TUF_SIGNERS", "DURABLE_ROLLOUTS_TUF_TRUST")
             if os.path.isfile(os.environ.get(v, ""))}
    signers = os.environ.get("DURABLE_ROLLOUTS_TUF_SIGNERS")
    if signers and os.path.isfile(signers):
        try:
            uris = json.loads(Path(signers).read_text())
        except (OSError, ValueError):
            uris = {}
        for uri in (uris.values() if isinstance(uris, dict) else []):
            scheme, _, path = str(uri).partition(":")
            if scheme in ("file", "file2") and path:
                found.add(Path(os.path.realpath(path.split("?")[0])))
    return sorted(found)


SYSTEM = (Path("/proc"), Path("/sys"), Path("/dev"), Path("/etc"), Path("/run"), Path("/var/run"))


def _too_wide(root: Path) -> str | None:
    """A root over the system's files or a home directory (where credentials live) is not an artifact root."""
    home = Path(os.path.realpath(Path.home()))
    for place in (*SYSTEM, *([home] if home != Path("/") else [])):
        if place.is_relative_to(root) or root.is_relative_to(place):
            return f"${ROOTS_VARIABLE}: {root} covers {place}: give the directory builds are dropped in"
    return None


def check_roots() -> str | None:
    """What is wrong with the configured roots (a worker refuses to start), or None: a root that is not a
    directory, covers system files or a home directory, or holds the TUF signing keys (other credentials
    beside an artifact: `artifact_file`)."""
    secrets = signing_keys()
    for root in roots():
        if not root.is_dir():
            return f"${ROOTS_VARIABLE}: {root} is not a directory"
        if (wide := _too_wide(root)) is not None:
            return wide
        inside = [s for s in secrets if s.is_relative_to(root)]
        if inside:
            return f"${ROOTS_VARIABLE}: {root} holds the worker's signing keys ({inside[0]}): move them out"
    return None


def artifact_file(given: str) -> Path:
    """The file `spec.artifact.file` names, once it is allowed: inside an artifact root, a regular file,
    not next to the worker's keys. Each refusal is one non-retryable line naming the field."""
    allowed = roots()
    if not allowed:
        raise _refuse(f"artifact.file {given}: this worker reads artifact files only under "
                      f"${ROOTS_VARIABLE}, which is not set")
    wide = next((w for w in map(_too_wide, allowed) if w is not None), None)
    if wide is not None:
        raise _refuse(f"artifact.file {given}: {wide}")
    real = Path(os.path.realpath(given))
    if not any(real.is_relative_to(root) for root in allowed):
        raise _refuse(f"artifact.file {given}: outside the worker's artifact roots (${ROOTS_VARIABLE})")
    if any(real.parent == secret.parent for secret in secret_paths()):  # the secret itself, or beside it
        raise _refuse(f"artifact.file {given}: in a directory holding the worker's keys or credentials")
    try:
        mode = os.stat(real).st_mode
    except OSError:
        raise _refuse(f"artifact.file: {given}: no such file on the worker") from None
    if not stat.S_ISREG(mode):
        raise _refuse(f"artifact.file {given}: not a regular file")
    return real


def open_artifact(given: str) -> tuple[BinaryIO, str]:
    """The artifact opened once, after its checks, and re-checked through the open descriptor (the path the
    kernel reports for it, a regular file): a file or directory swapped for a link between the check and the
    open is refused, and every later read comes from this descriptor. Returns (file, its name)."""
    real = artifact_file(given)
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        raise _refuse(f"artifact.file {given}: changed while it was opened") from None
    file = os.fdopen(fd, "rb")
    try:
        opened = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        opened = str(real)  # no /proc (not Linux): O_NOFOLLOW and the type check below still hold
    if opened != str(real) or not stat.S_ISREG(os.fstat(fd).st_mode):
        file.close()
        # a file replaced while it was opened (CI writing the next build): retried, not a fault of the Release
        raise ApplicationError(f"artifact.file {given}: changed while it was opened", type="ArtifactChanged",
                               non_retryable=opened != f"{real} (deleted)")
    return file, real.name
