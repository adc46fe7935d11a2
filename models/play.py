"""The Google Play channel: a Release's `spec.channel.googlePlay` block, and its activities' wire models.

A phase is the track release's `userFraction` (basis points / 10,000); 100 % is `completed`; a halt is
`halted` (users who have it keep it; `inProgress` resumes at the same fraction). The bundle is uploaded
and put on the track as a `draft` release (served to nobody) in one edit (as Google's own tools do: a
bundle is committed with its track assignment, and nothing is served before the first phase's window
and approvals); each exposure is one edit (`edits.insert` → `tracks.update`
→ `commit`). A commit Play answers with "Changes cannot be sent for review automatically" stops the
release: the documented way on, `changesNotSentForReview=true`, commits changes no user receives until
someone sends them for review in the Play Console, so a phase would bake and pass its gate on nothing
and a halt would stop nothing — the channel never takes it.
Credentials: a service-account key file named by `$DURABLE_ROLLOUTS_PLAY_CREDENTIALS`, read by the
activities only.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from models.specbase import Message, SpecModel

PACKAGE_NAME = r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$"


class PlayChannel(SpecModel):
    """`spec.channel.googlePlay`: one track of one app on Google Play."""

    package_name: str = Field(pattern=PACKAGE_NAME, max_length=255, description="the app's package name")
    track: str = Field("production", min_length=1, max_length=100, pattern=r"^[a-z0-9:_-]+$",
                       description="production, beta, alpha, internal, a closed track's name, or wear:production …")
    release_name: str | None = Field(None, max_length=50, description="default: the artifact's version")
    release_notes: dict[str, str] = Field(default_factory=dict, description="language (en-US) → what is new",
                                          max_length=100)
    in_app_update_priority: int | None = Field(None, ge=0, le=5)

    ARTIFACT_FIELDS: ClassVar[tuple[str, ...]] = ("file", "version")

    def artifact_fields(self) -> tuple[str, ...]:
        return self.ARTIFACT_FIELDS

    def check(self, spec: Any) -> None:
        """Play stages any fraction in (0, 1): nothing to refuse beyond the common checks."""

    def describe(self) -> str:
        return f"play:{self.package_name}#{self.track}"


# ---- activity wire models ----------------------------------------------------------------------------


class PlayUploadInput(Message):
    package_name: str
    path: str = Field(description="the .aab on the worker's disk")
    track: PlayTrackInput | None = Field(None, description="the track with the bundle as a draft release, set in "
                                                           "the upload's edit (its version code: the bundle's)")


class PlayBundle(Message):
    version_code: int
    sha256: str
    uploaded: bool = Field(description="False: Play had it already (a retry, or an earlier release)")


class PlayTrackRelease(Message):
    """One release of a track as Play shows it."""

    status: Literal["statusUnspecified", "draft", "inProgress", "halted", "completed"]
    version_codes: list[int] = Field(default_factory=list)
    user_fraction: float | None = None
    name: str | None = None


class PlayTrackInput(Message):
    """The track's release of `version_code` at `basis_points` (10,000: completed), halted or not."""

    channel: PlayChannel
    version_code: int
    version_name: str
    basis_points: int = Field(ge=0, le=10_000)
    halted: bool = False
    draft: bool = Field(False, description="on the track as a draft release (no users), unless already there")


class PlayTrackQuery(Message):
    channel: PlayChannel


class PlayTrackState(Message):
    releases: list[PlayTrackRelease] = Field(default_factory=list)
    committed: bool = Field(False, description="an edit was committed (False: the track was already so)")

    def release_of(self, version_code: int) -> PlayTrackRelease | None:
        return next((r for r in self.releases if version_code in r.version_codes), None)

    def completed_codes(self) -> list[int]:
        return [c for r in self.releases if r.status == "completed" for c in r.version_codes]

    def percent_of(self, version_code: int) -> float:
        """The share Play serves `version_code` to, in percent."""
        release = self.release_of(version_code)
        if release is None or release.status in ("draft", "statusUnspecified"):
            return 0.0
        if release.status == "completed":
            return 100.0
        return round((release.user_fraction or 0.0) * 100, 4)


PlayUploadInput.model_rebuild()
