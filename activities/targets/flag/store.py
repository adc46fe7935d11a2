"""The `FlagStore` Protocol and its default: a flagd flag-definition file.

A store reads and writes one flag's rollout: the released variant's share in basis points, by flagd's
`fractional` operator (`[[variant, w], [baseline, 10000 - w]]`: order and total fixed, so a larger
share only adds users). The file is replaced atomically (written beside, fsync'd, renamed), so an
application's flagd provider in FILE mode reads the old definition or the new one, never half.
Evaluators: flagd-core 2.x (`bucket = mmh3(cbor(flagKey + targetingKey)) * total >> 32`); 1.x hashed
differently, so the project pins the evaluator's major version.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

from temporalio.exceptions import ApplicationError

from models.flags import FlagChannel, FlagState

TOTAL = 10_000
SCHEMA = "https://flagd.dev/schema/v0/flags.json"


class FlagStore(Protocol):
    def read(self, channel: FlagChannel, variant: str) -> FlagState: ...

    def write(self, channel: FlagChannel, variant: str, basis_points: int) -> FlagState: ...


def targeting(variant: str, baseline: str, basis_points: int) -> dict[str, Any]:
    return {"fractional": [[variant, basis_points], [baseline, TOTAL - basis_points]]}


class FlagdFileStore:
    def _load(self, path: Path) -> dict[str, Any]:
        if not path.exists():
            return {"$schema": SCHEMA, "flags": {}}
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ApplicationError(f"{path}: not a flagd flag definition ({type(error).__name__})", type="Invalid",
                                   non_retryable=True) from None
        if not isinstance(document, dict) or not isinstance(document.get("flags", {}), dict):
            raise ApplicationError(f"{path}: `flags` must be a mapping", type="Invalid", non_retryable=True)
        document.setdefault("flags", {})
        return document

    def read(self, channel: FlagChannel, variant: str) -> FlagState:
        path = Path(channel.file)
        flag = self._load(path)["flags"].get(channel.flag)
        if flag is None:
            return FlagState()
        weights = {w[0]: w[1] for w in flag.get("targeting", {}).get("fractional", []) if isinstance(w, list) and len(w) == 2}
        revision = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        return FlagState(variant=variant, basis_points=int(weights.get(variant, 0)), revision=revision)

    def write(self, channel: FlagChannel, variant: str, basis_points: int) -> FlagState:
        path = Path(channel.file)
        document = self._load(path)
        flag = document["flags"].get(channel.flag) or {"state": "ENABLED", "variants": dict(channel.variants),
                                                        "defaultVariant": channel.baseline}
        for name in (variant, channel.baseline):
            if name not in flag.get("variants", {}):
                raise ApplicationError(f"{path}: flag {channel.flag} has no variant {name!r}", type="Invalid",
                                       non_retryable=True)
        flag["targeting"] = targeting(variant, channel.baseline, basis_points)
        document["flags"][channel.flag] = flag
        data = json.dumps(document, indent=2, sort_keys=True).encode()
        if not path.exists() or path.read_bytes() != data:
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
        return FlagState(variant=variant, basis_points=basis_points, revision=hashlib.sha256(data).hexdigest()[:16])
