"""The Intune channel: a Release's `spec.channel.intune` block, and its activities' wire models.

An app already in Intune (`mobileApps/{id}`) is assigned to device groups ring by ring
(`POST …/assign` with `mobileAppAssignments`): `assign` replaces the whole set, so each ring sends the
earlier rings' groups again, with their deadlines as they were. Each ring's gate can read the install
success rate from the reports export (`deviceManagement/reports/exportJobs`, the `intuneInstalls`
analysis provider). Going back restores the assignments the app had before. Credentials: Azure AD
client credentials in `$DURABLE_ROLLOUTS_INTUNE_CREDENTIALS`, read by the activities only.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field

from models.durations import Duration
from models.rings import Ring, check_rings
from models.specbase import Message, SpecModel

UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


class IntuneChannel(SpecModel):
    """`spec.channel.intune`: one app in Intune, assigned in rings."""

    app_id: str = Field(pattern=UUID, description="the mobileApp's id in Intune")
    intent: Literal["required", "available"] = "required"
    rings: list[Ring] = Field(min_length=1, max_length=10)
    install_deadline: Duration | None = Field(timedelta(days=2), description="after a ring is assigned: install by")
    notifications: Literal["showAll", "showReboot", "hideAll"] = "showAll"

    ARTIFACT_FIELDS: ClassVar[tuple[str, ...]] = ("version",)

    def artifact_fields(self) -> tuple[str, ...]:
        return self.ARTIFACT_FIELDS

    def check(self, spec: Any) -> None:
        check_rings(self.rings, spec, "intune")

    def describe(self) -> str:
        return f"intune:{self.app_id}"


# ---- activity wire models ----------------------------------------------------------------------------


class Assignment(Message):
    """One assignment of the app: a group (or every device), its intent and install deadline."""

    group_id: str = Field("", description="empty: all devices")
    intent: str
    deadline: str = Field("", description="ISO 8601, or empty")


class AssignInput(Message):
    channel: IntuneChannel
    groups: list[str] = Field(description="the groups wanted (\"*\": all devices), earlier rings' first")
    keep: list[Assignment] = Field(default_factory=list, description="assignments from before the release, kept")


class AssignmentSet(Message):
    assignments: list[Assignment] = Field(default_factory=list)
    changed: bool = False

    def groups(self) -> list[str]:
        return [a.group_id or "*" for a in self.assignments]
