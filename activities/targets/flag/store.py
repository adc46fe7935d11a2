"""The `FlagStore` Protocol, and the flagd flag-definition document every default store keeps.

A store reads and writes one flag's rollout: the released variant's share in basis points, by flagd's
`fractional` operator (`[[variant, w], [baseline, 10000 - w]]`: order and total fixed, so a larger
share only adds users). `FlagdStore` does the document (parse, check, set the targeting) over a
backend that holds its bytes: a file on disk (`file.py`, replaced atomically) or an S3 object
(`s3object.py`, replaced only if unchanged since read). Applications read it with OpenFeature's flagd
provider in FILE mode (an S3 object synced to a file). Evaluators: flagd-core 2.x
(`bucket = mmh3(cbor(flagKey + targetingKey)) * total >> 32`); 1.x hashed differently, so the project
pins the evaluator's major version.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

from temporalio.exceptions import ApplicationError

from models.flags import FlagChannel, FlagState

TOTAL = 10_000
SCHEMA = "https://flagd.dev/schema/v0/flags.json"


class FlagStore(Protocol):
    def read(self, channel: FlagChannel, variant: str) -> FlagState: ...

    def write(self, channel: FlagChannel, variant: str, basis_points: int) -> FlagState: ...


class Backend(Protocol):
    """Where a flag-definition document's bytes live. `load` returns (bytes or None, a version token);
    `save` replaces them, refusing (retryably) when they changed since the token was read."""

    def where(self, channel: FlagChannel) -> str: ...

    def load(self, channel: FlagChannel) -> tuple[bytes | None, str]: ...

    def save(self, channel: FlagChannel, data: bytes, token: str) -> None: ...


def targeting(variant: str, baseline: str, basis_points: int) -> dict[str, Any]:
    return {"fractional": [[variant, basis_points], [baseline, TOTAL - basis_points]]}


class FlagdStore:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def _parse(self, channel: FlagChannel, data: bytes | None) -> dict[str, Any]:
        where = self.backend.where(channel)
        if data is None:
            return {"$schema": SCHEMA, "flags": {}}
        try:
            document = json.loads(data)
        except ValueError as error:
            raise ApplicationError(f"{where}: not a flagd flag definition ({type(error).__name__})", type="Invalid",
                                   non_retryable=True) from None
        if not isinstance(document, dict) or not isinstance(document.get("flags", {}), dict):
            raise ApplicationError(f"{where}: `flags` must be a mapping", type="Invalid", non_retryable=True)
        document.setdefault("flags", {})
        return document

    def read(self, channel: FlagChannel, variant: str) -> FlagState:
        data, _ = self.backend.load(channel)
        flag = self._parse(channel, data)["flags"].get(channel.flag)
        if flag is None:
            return FlagState()
        weights = {w[0]: w[1] for w in flag.get("targeting", {}).get("fractional", []) if isinstance(w, list) and len(w) == 2}
        return FlagState(variant=variant, basis_points=int(weights.get(variant, 0)),
                         revision=hashlib.sha256(data or b"").hexdigest()[:16])

    def write(self, channel: FlagChannel, variant: str, basis_points: int) -> FlagState:
        data, token = self.backend.load(channel)
        document = self._parse(channel, data)
        flag = document["flags"].get(channel.flag) or {"state": "ENABLED", "variants": dict(channel.variants),
                                                        "defaultVariant": channel.baseline}
        for name in (variant, channel.baseline):
            if name not in flag.get("variants", {}):
                raise ApplicationError(f"{self.backend.where(channel)}: flag {channel.flag} has no variant {name!r}",
                                       type="Invalid", non_retryable=True)
        flag["targeting"] = targeting(variant, channel.baseline, basis_points)
        document["flags"][channel.flag] = flag
        new = json.dumps(document, indent=2, sort_keys=True).encode()
        if new != data:
            self.backend.save(channel, new, token)
        return FlagState(variant=variant, basis_points=basis_points, revision=hashlib.sha256(new).hexdigest()[:16])
