"""The updater channel: a Release's `spec.channel.updater` block, and the wire models of its activities.

A channel is a delegated targets role (`stable`, `beta`, `alpha`, `nightly`) of a TUF repository kept
in an S3 bucket under a prefix; devices (rollout-agent) read it over HTTP. Keys never appear here: the
activities read the signers from the worker's environment.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from models.documents import from_document
from models.durations import Duration
from models.specbase import Message, SpecModel

ChannelName = Literal["stable", "beta", "alpha", "nightly"]
NEXT_CHANNEL = {"nightly": "alpha", "alpha": "beta", "beta": "stable"}


class Repository(SpecModel):
    """Where the TUF repository lives: `s3://bucket/prefix/{metadata,targets}/`."""

    bucket: str = Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.-]+[a-z0-9]$")
    prefix: str = Field("", pattern=r"^([A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*)?$", description="e.g. desktop-app")
    endpoint: str | None = Field(None, pattern=r"^https?://", description="S3 endpoint (default: the worker's)")

    @field_validator("prefix")
    @classmethod
    def _no_dot_segments(cls, value: str, info: ValidationInfo) -> str:
        if from_document(info) and any(part in (".", "..") for part in value.split("/")):
            raise ValueError(f"{value!r}: no . or .. segments (devices fetch over HTTP, which resolves them: "
                             "they would read another prefix than the one published)")
        return value

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)


class Expiry(SpecModel):
    """How long each role's metadata is valid; the timestamp is re-signed well before it expires (the
    refresh schedule), so a frozen mirror is noticed within `timestamp`."""

    timestamp: Duration = timedelta(days=1)
    snapshot: Duration = timedelta(days=7)
    channel: Duration = timedelta(days=90)


class UpdaterChannel(SpecModel):
    """`spec.channel.updater`: the channel of a self-hosted updater."""

    repository: Repository
    channel: ChannelName
    critical: bool = Field(False, description="every device takes it at once (phasing is bypassed)")
    minimum_version: str = Field("", max_length=64, description="devices below it take the release at once")
    promote_from: ChannelName | None = Field(
        None, description="promote the release this channel's predecessor runs (the same artifact, the same hash) "
                          "instead of uploading a file: nightly → alpha → beta → stable")
    expiry: Expiry = Field(default_factory=Expiry)

    @model_validator(mode="after")
    def _promotes_from_the_channel_before(self) -> UpdaterChannel:
        if self.promote_from is not None and NEXT_CHANNEL.get(self.promote_from) != self.channel:
            raise ValueError(f"@promoteFrom: {self.channel} is promoted from "
                             f"{next((c for c, n in NEXT_CHANNEL.items() if n == self.channel), 'nothing')}, "
                             f"not {self.promote_from}")
        return self

    def artifact_fields(self) -> tuple[str, ...]:
        return ("version", "platform") if self.promote_from is not None else ("file", "version", "platform")

    def check(self, spec: Any) -> None:
        if self.promote_from is not None and spec.approval is None:
            raise ValueError(f"@approval: promoting {self.promote_from} to {self.channel} goes through the "
                             "channel's approval: give spec.approval")

    def describe(self) -> str:
        return f"{self.repository.describe()}#{self.channel}"


# ---- activity wire models ----------------------------------------------------------------------------


class Artifact(Message):
    """An uploaded artifact: content-addressed by its sha256 (`blobs/<sha256>`)."""

    name: str
    version: str
    platform: str
    sha256: str
    length: int


class UploadInput(Message):
    repository: Repository
    path: str = Field(description="the file on the publisher's (the worker's) disk")
    version: str
    platform: str


class ReleaseState(Message):
    """The rollout state to sign into the channel's `current` target (see rollout_agent.cohort)."""

    basis_points: int = Field(ge=0, le=10_000)
    salt: str
    halted: bool = False
    critical: bool = False
    minimum_version: str = ""
    downgrade: bool = False


class PublishInput(Message):
    """Make `artifact` the channel's current release with `state`; `previous` (when given) becomes the
    channel's `previous` target. Idempotent: publishing what the channel already says changes nothing."""

    repository: Repository
    channel: ChannelName
    release: str = Field(description="the Release's ID (recorded in the signed state)")
    artifact: Artifact
    state: ReleaseState
    previous: Artifact | None = None
    expiry: Expiry = Field(default_factory=Expiry)
    seen: dict[str, int] = Field(default_factory=dict, description=(
        "role -> the highest metadata version this release has seen: older metadata read back is a replay"))


class ChannelRelease(Message):
    """What the channel's signed metadata say now."""

    current: Artifact | None = None
    previous: Artifact | None = None
    state: ReleaseState | None = None
    release: str = ""
    versions: dict[str, int] = Field(default_factory=dict, description="role -> metadata version")


class ChannelInput(Message):
    repository: Repository
    channel: ChannelName
    platform: str
    seen: dict[str, int] = Field(default_factory=dict, description="as PublishInput.seen")


class RefreshInput(Message):
    """Re-sign the channel roles, snapshot and timestamp once they have used `within_fraction` of their
    validity (the freeze-protection schedule)."""

    repository: Repository
    expiry: Expiry = Field(default_factory=Expiry)
    within_fraction: float = Field(0.5, gt=0, le=1, description="re-sign once this much of the validity is used")


class RefreshResult(Message):
    timestamp_version: int
    snapshot_version: int
    resigned: list[str] = Field(default_factory=list)
    offline_expiring: list[str] = Field(default_factory=list, description="offline roles (root, targets) expiring "
                                                                          "within 30 days: a person re-signs them")
