"""What this worker has seen of each repository, kept where the bucket's writers cannot write.

A bucket writer without keys can put back older metadata that is still validly signed (a timestamp
from an hour ago, the snapshot and channel role it names). Verifying signatures does not catch that;
remembering versions does. Every verified read and every commit records each role's highest version,
and the newest verified root, in `$DURABLE_ROLLOUTS_STATE_DIR/tuf/<repository>.json` (default
`~/.local/state/durable-rollouts`); `S3Repository.load` refuses anything older, and never writes a
version at or below one it has seen. A workflow also carries the versions its own activities returned
(`PublishInput.seen`), so a worker whose state is empty (a new pod) still refuses what the release has
already seen past. Keep the state directory on a volume where workers restart.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from temporalio.exceptions import ApplicationError

from models.updater import Repository

STATE_VARIABLE = "DURABLE_ROLLOUTS_STATE_DIR"


def state_dir() -> Path:
    given = os.environ.get(STATE_VARIABLE)
    return Path(given) if given else Path.home() / ".local" / "state" / "durable-rollouts"


class Seen:
    def __init__(self, repository: Repository, anchor: bytes, directory: Path | None = None) -> None:
        """`anchor`: the root the worker's trust file names — a repository initialised anew under the same
        bucket and prefix has another, and starts with nothing seen."""
        name = hashlib.sha256(repository.describe().encode() + b"\0" + hashlib.sha256(anchor).digest()).hexdigest()[:32]
        self.path = (directory or state_dir()) / "tuf" / f"{name}.json"

    def read(self) -> tuple[dict[str, int], bytes | None]:
        """(role -> highest version seen, the newest verified root's bytes or None)."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}, None
        versions = {str(k): int(v) for k, v in (data.get("versions") or {}).items() if isinstance(v, int)}
        root = data.get("root")
        return versions, base64.b64decode(root) if isinstance(root, str) else None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def record(self, versions: dict[str, int], root: bytes | None = None, root_version: int = 0) -> None:
        """Raise the recorded versions to `versions` (never lower them); keep `root` if it is newer. A state
        directory the worker cannot write is a permanent fault naming it (the protection is not dropped)."""
        try:
            self._record(versions, root, root_version)
        except OSError as error:
            raise ApplicationError(f"${STATE_VARIABLE}: cannot keep what the worker saw in {self.path.parent} "
                                   f"({type(error).__name__}): give a writable directory", type="Invalid",
                                   non_retryable=True) from None

    def _record(self, versions: dict[str, int], root: bytes | None, root_version: int) -> None:
        with self._locked():
            known, known_root = self.read()
            merged = {role: max(known.get(role, 0), versions.get(role, 0)) for role in {*known, *versions}}
            if root is not None and root_version >= known.get("root", 0):
                known_root = root
            staged = self.path.with_suffix(".new")
            staged.write_text(json.dumps({"versions": merged, "root": base64.b64encode(known_root).decode()
                                          if known_root else None}))
            os.replace(staged, self.path)
