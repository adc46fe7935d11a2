"""The `FlagStore` Protocol, and the flagd flag-definition document every default store keeps.

A store reads and writes one flag's rollout: the released variant's share in basis points of the users
its `fractional` decides. `FlagdStore` does the document over a backend that holds its bytes — a file
(`file.py`), an S3 object (`s3object.py`) or a ConfigMap key (`configmap.py`), each written only if
unchanged since read — and changes nothing but the released variant's weight, taken from the baseline
next to it (`fractional.py`: bucketing key, rules and other variants kept; a flag the channel cannot
ramp that way is refused, naming why), in the flag's `targeting` text only (`document.py`: the
flag's other members and the other flags keep theirs). A write that loses a race to another writer
reads again and retries (`TRIES` times, then the activity's retry policy takes over). Applications read the document with OpenFeature's flagd
provider in FILE mode. Evaluators: flagd-core 2.x (`bucket = mmh3(cbor(flagKey + targetingKey)) *
total >> 32`); 1.x hashed differently, so the project pins the evaluator's major version.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any, Protocol

from temporalio.exceptions import ApplicationError

from activities.targets.flag.document import new_document, with_value
from activities.targets.flag.fractional import Unrampable, entries, ramp, restored, share
from models.flags import FlagChannel, FlagState

SCHEMA = "https://flagd.dev/schema/v0/flags.json"
TRIES = 5  # reads and compare-and-swap writes in one activity attempt, when another writer wins the race
CONFLICT = "FlagStoreConflict"


class FlagStore(Protocol):
    def read(self, channel: FlagChannel, variant: str, plan: Sequence[int] = ()) -> FlagState:
        """The variant's share now; with a `plan` (the shares a release will write), refuses what the
        store could not write, before anything is written."""

    def write(self, channel: FlagChannel, variant: str, basis_points: int,
              restore: list[list[Any]] | None = None) -> FlagState:
        """The variant at `basis_points`; `restore`: the entries read before the release, put back
        exactly where the store can (a flagd fractional still holding only the channel's ramps)."""


class Backend(Protocol):
    """Where a flag-definition document's bytes live. `load` returns (bytes or None, a version token);
    `save` replaces them, refusing (retryably, type `FlagStoreConflict`) when they changed since the
    token was read."""

    def where(self, channel: FlagChannel) -> str: ...

    def load(self, channel: FlagChannel) -> tuple[bytes | None, str]: ...

    def save(self, channel: FlagChannel, data: bytes, token: str) -> None: ...


def _revision(data: bytes | None) -> str:
    return hashlib.sha256(data or b"").hexdigest()[:16]


class _NotFinite(ValueError):
    pass


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(text)
    return value


def _no_constant(name: str) -> float:
    raise _NotFinite(name)


def decoded(data: bytes) -> str:
    """The document's text: UTF-8 without a byte-order mark (ValueError naming what it is otherwise)."""
    if data.startswith(codecs.BOM_UTF8):
        raise ValueError("it starts with a UTF-8 byte-order mark: write it without one")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("it is not UTF-8 (a flagd document is UTF-8 JSON)") from None


class FlagdStore:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def _invalid(self, channel: FlagChannel, why: str) -> ApplicationError:
        return ApplicationError(f"{self.backend.where(channel)}: {why}", type="Invalid", non_retryable=True)

    def _flag(self, channel: FlagChannel, data: bytes | None) -> dict[str, Any] | None:
        """The flag's definition in the document (None: not there, or no document)."""
        if data is None:
            return None
        try:
            document = json.loads(decoded(data), parse_float=_finite, parse_constant=_no_constant)
        except _NotFinite as number:
            raise self._invalid(channel, f"the number {number} is not finite (strict JSON parsers refuse it)") from None
        except ValueError as error:
            why = str(error) if error.__class__ is ValueError else type(error).__name__
            raise self._invalid(channel, f"not a flagd flag definition ({why})") from None
        if not isinstance(document, dict) or not isinstance(document.get("flags", {}), dict):
            raise self._invalid(channel, "`flags` must be a mapping")
        flag = document.get("flags", {}).get(channel.flag)
        if flag is not None and not isinstance(flag, dict):
            raise self._invalid(channel, f"flags.{channel.flag} must be a mapping")
        return flag

    @staticmethod
    def _blank(channel: FlagChannel) -> dict[str, Any]:
        """The flag a write creates when the document does not define it."""
        return {"state": "ENABLED", "variants": dict(channel.variants), "defaultVariant": channel.baseline}

    def _ramp(self, channel: FlagChannel, flag: dict[str, Any], variant: str, basis_points: int) -> dict[str, Any]:
        try:
            return ramp(flag, variant, channel.baseline, basis_points)
        except Unrampable as why:
            raise self._invalid(channel, f"flag {channel.flag} cannot be ramped to {basis_points / 100:g}%: "
                                         f"{why}") from None

    def read(self, channel: FlagChannel, variant: str, plan: Sequence[int] = ()) -> FlagState:
        data, _ = self.backend.load(channel)
        flag = self._flag(channel, data)
        planned = flag or self._blank(channel)
        for basis_points in plan:  # each write the release will make, in order, in memory
            planned = self._ramp(channel, planned, variant, basis_points)
        if flag is None:
            return FlagState()
        try:
            basis_points, kept = share(flag, variant), entries(flag)
        except Unrampable as why:
            raise self._invalid(channel, f"flag {channel.flag}: {why}") from None
        return FlagState(variant=variant, basis_points=basis_points, revision=_revision(data), entries=kept)

    def write(self, channel: FlagChannel, variant: str, basis_points: int,
              restore: list[list[Any]] | None = None) -> FlagState:
        for attempt in range(TRIES):
            data, token = self.backend.load(channel)
            current = self._flag(channel, data)
            try:
                flag = restored(current, restore, variant, channel.baseline) if restore and current else None
            except Unrampable:
                flag = None
            flag = flag or self._ramp(channel, current or self._blank(channel), variant, basis_points)
            if flag == current:
                return FlagState(variant=variant, basis_points=basis_points, revision=_revision(data))
            if data is None:
                text = new_document(SCHEMA, channel.flag, flag)
            elif current is None:
                text = with_value(decoded(data), ["flags", channel.flag], flag)
            else:  # a ramp changes only the targeting: the flag's other members keep their text
                text = with_value(decoded(data), ["flags", channel.flag, "targeting"], flag["targeting"])
            try:
                self.backend.save(channel, text.encode(), token)
            except ApplicationError as error:
                if error.type != CONFLICT or attempt == TRIES - 1:
                    raise
                continue
            return FlagState(variant=variant, basis_points=basis_points, revision=_revision(text.encode()))
        raise AssertionError("unreachable")
