"""The Microsoft Store channel: a Release's `spec.channel.microsoftStore` block, and its activities'
wire models.

A release is one submission through the Partner Center submission API: created from the published
one, the package uploaded to the submission's blob (a zip), a gradual package rollout at the first
phase's percentage, committed, certified (waited for durably), then raised with
`updatepackagerolloutpercentage` and finished with `finalizepackagerollout`. Microsoft cannot pause a
package rollout — `haltpackagerollout` is final (new customers get the previous packages) — so a
halt is refused and going back halts it. A package flight is the same under `flights/{flightId}`.
Credentials: Azure AD client credentials in `$DURABLE_ROLLOUTS_MSSTORE_CREDENTIALS` (JSON: tenantId,
clientId, clientSecret), read by the activities only.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field

from models.durations import Duration
from models.specbase import Message, SpecModel

RolloutStatus = Literal["PackageRolloutNotStarted", "PackageRolloutInProgress", "PackageRolloutComplete",
                        "PackageRolloutStopped"]


class MicrosoftStoreChannel(SpecModel):
    """`spec.channel.microsoftStore`: an app (its Store ID), or one of its package flights."""

    application_id: str = Field(pattern=r"^[0-9A-Z]{12}$", description="the Store ID, e.g. 9NBLGGH4R315")
    flight_id: str | None = Field(None, pattern=r"^[0-9a-f-]{36}$", description="a package flight's ID")
    mandatory_update: bool = False
    replace_architectures: list[Literal["x86", "x64", "ARM", "ARM64", "Neutral"]] = Field(
        default_factory=list, max_length=5, description="the submission's packages of these architectures are "
        "marked PendingDelete (the new package replaces them); packages of other architectures are kept")
    certification_poll: Duration = Field(timedelta(minutes=30), description="how often certification is read")
    certification_timeout: Duration = Field(timedelta(days=7))

    ARTIFACT_FIELDS: ClassVar[tuple[str, ...]] = ("file", "version")
    REFUSED_DECISIONS: ClassVar[dict[str, str]] = {
        "halt": "the Microsoft Store cannot pause a package rollout (haltpackagerollout is final): "
                "`rollout rollback` halts it for good",
        "resume": "the Microsoft Store cannot pause a package rollout, so there is nothing to resume"}

    def artifact_fields(self) -> tuple[str, ...]:
        return self.ARTIFACT_FIELDS

    def check(self, spec: Any) -> None:
        if spec.on_failure == "halt":
            raise ValueError("@onFailure: the Microsoft Store cannot pause a package rollout "
                             "(haltpackagerollout is final): use rollback")

    @property
    def base(self) -> str:
        """The submission API's path of the app or of its flight."""
        app = f"v1.0/my/applications/{self.application_id}"
        return f"{app}/flights/{self.flight_id}" if self.flight_id else app

    def describe(self) -> str:
        return f"msstore:{self.application_id}{'/flight/' + self.flight_id if self.flight_id else ''}"


# ---- activity wire models ----------------------------------------------------------------------------


class StoreSubmissionInput(Message):
    channel: MicrosoftStoreChannel
    path: str = Field(description="the package (.msixupload, .appxupload, .msix) on the worker's disk")
    version: str
    basis_points: int = Field(ge=1, le=10_000, description="the first phase's share")


class StoreSubmission(Message):
    id: str
    status: str = Field("", description="PendingCommit, CommitStarted, PreProcessing, Certification, Release, "
                                        "Publishing, Published, or …Failed")
    errors: list[str] = Field(default_factory=list)
    uploaded: bool = Field(False, description="the package was sent by this call (False: the blob had it)")


class StoreRolloutInput(Message):
    channel: MicrosoftStoreChannel
    submission_id: str
    action: Literal["raise", "halt", "finalize", "read"]
    basis_points: int = Field(0, ge=0, le=10_000)


class StoreRollout(Message):
    percentage: float = 0.0
    status: RolloutStatus = "PackageRolloutNotStarted"
    fallback_submission_id: str = ""
