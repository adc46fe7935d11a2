"""Who takes a release: decided on the device, from signed data only.

A channel's release is the TUF target `<channel>/<platform>/current`; its signed `custom` field carries
the rollout state (`RolloutState`). A device is in the cohort when
`sha256(device_id ‖ ":" ‖ salt) mod 10000 < basis_points`: stable for a release (the salt is fixed for
the release, across halts and resumes, so nobody reshuffles), different per release (a new salt).
The previous good release is the target `<channel>/<platform>/previous`: a device outside the cohort
that is older than it takes that one. The publisher (durable-rollouts' updater activities) and the
fleet simulator use this very module.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from packaging.version import InvalidVersion, Version

BASIS = 10_000
CHANNELS = ("stable", "beta", "alpha", "nightly")


def current_target(channel: str, platform: str) -> str:
    return f"{channel}/{platform}/current"


def previous_target(channel: str, platform: str) -> str:
    return f"{channel}/{platform}/previous"


@dataclass
class RolloutState:
    """The signed rollout state of a channel's current release (the target's `custom["rollout"]`)."""

    version: str
    release: str = field(default="", metadata={"doc": "the Release that published it (its ID)"})
    basis_points: int = 0
    salt: str = ""
    halted: bool = False
    critical: bool = False
    minimum_version: str = ""
    downgrade: bool = False  # a rollback: devices on a newer version may go back to this one
    artifact: str = ""  # the artifact's file name (`app-1.2.3.tar.gz`: a tarball is unpacked)

    def to_custom(self) -> dict[str, Any]:
        return {"rollout": {_camel(k): v for k, v in asdict(self).items()}}

    @classmethod
    def from_custom(cls, custom: dict[str, Any]) -> RolloutState:
        """The state as signed, each field of its own type: a string where a number belongs (`"10000"`), a
        string where a boolean belongs (`"false"` is truthy), an artifact name or version that is not a
        plain file name — each is refused (ValueError naming the field), never guessed at."""
        raw = custom.get("rollout") if isinstance(custom, dict) else None
        if not isinstance(raw, dict) or not isinstance(raw.get("version"), str):
            raise ValueError("the target's custom field has no rollout state")
        known = {_camel(k): k for k in cls.__dataclass_fields__}
        values = {known[k]: v for k, v in raw.items() if k in known}
        for name, value in values.items():
            expected = _TYPES[name]
            if type(value) is not expected:  # bool is an int subclass: exact types only
                raise ValueError(f"rollout.{_camel(name)}: must be {_KIND[expected]}, not {type(value).__name__} {value!r:.40}")
        if not 0 <= values.get("basis_points", 0) <= BASIS:
            raise ValueError(f"rollout.basisPoints: {values['basis_points']} is not in [0, {BASIS}]")
        if values.get("version") and not SAFE_NAME.fullmatch(values["version"]):
            raise ValueError(f"rollout.version: {values['version']!r:.60} is not a plain version")
        artifact = values.get("artifact", "")
        if artifact in (".", "..") or any(c in artifact for c in "/\\\0"):
            raise ValueError(f"rollout.artifact: {artifact!r:.60} is not a plain file name")
        return cls(**values)

    @property
    def local_name(self) -> str:
        """The artifact's name as the device stores it: characters beyond letters, digits and `._+~-`
        (which earlier publishers let through) become `_`; the suffix (`.tar.gz`) is kept."""
        name = re.sub(r"[^A-Za-z0-9._+~-]", "_", self.artifact).lstrip(".")[:128]
        return name or "artifact"


_TYPES = {"version": str, "release": str, "basis_points": int, "salt": str, "halted": bool, "critical": bool,
          "minimum_version": str, "downgrade": bool, "artifact": str}
_KIND = {str: "a string", int: "an integer", bool: "true or false"}
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}")  # joined into paths on the device: no /, no ..


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def bucket(device_id: str, salt: str) -> int:
    """The device's stable place in [0, 10000) for one release."""
    digest = hashlib.sha256(f"{device_id}:{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BASIS


def in_cohort(device_id: str, state: RolloutState) -> bool:
    return bucket(device_id, state.salt) < state.basis_points


def parse_version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


Action = Literal["install", "stay", "required", "rollback", "previous"]


@dataclass
class Decision:
    action: Action
    version: str
    why: str

    @property
    def installs(self) -> bool:
        return self.action != "stay"


def decide(device_id: str, installed: str, state: RolloutState, previous: str = "") -> Decision:
    """What this device does with the channel's release: `installed` is its version ('' for none),
    `previous` the channel's previous good version ('' when there is none)."""
    have, offered = parse_version(installed) if installed else None, parse_version(state.version)
    if offered is None:
        return Decision("stay", installed, f"the release's version {state.version!r} is not a version")
    if have == offered:
        return Decision("stay", installed, f"{installed} is the channel's release")
    if have is not None and have > offered:
        if state.downgrade and not state.halted:
            return Decision("rollback", state.version, f"the channel rolled back to {state.version}")
        return Decision("stay", installed, f"{installed} is newer than {state.version} (no downgrade sanctioned)")
    minimum = parse_version(state.minimum_version) if state.minimum_version else None
    if minimum is not None and (have is None or have < minimum):
        return Decision("required", state.version, f"{installed or 'nothing'} is below the minimum {state.minimum_version}")
    if state.critical:
        return Decision("install", state.version, "a critical release: phasing is bypassed")
    if state.halted:
        return Decision("stay", installed, f"the release of {state.version} is halted")
    if state.downgrade:
        return Decision("install", state.version, f"the channel is back on {state.version}")
    if in_cohort(device_id, state):
        return Decision("install", state.version,
                        f"in the cohort (bucket {bucket(device_id, state.salt)} < {state.basis_points})")
    prior = parse_version(previous) if previous else None
    if prior is not None and (have is None or have < prior):
        return Decision("previous", previous, f"not in the cohort yet; {previous} is the previous release")
    return Decision("stay", installed, f"not in the cohort yet (bucket {bucket(device_id, state.salt)} "
                                       f">= {state.basis_points})")
