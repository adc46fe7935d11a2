"""The Intune channel: a Release's `spec.channel.intune` block, and its activities' wire models.

An app already in Intune (`mobileApps/{id}`) is assigned to device groups ring by ring
(`POST …/assign` with `mobileAppAssignments`): `assign` replaces the whole set, so each ring sends the
set as Graph holds it again (the earlier rings with their deadlines as they were, every other
assignment exactly as read) with its groups added. Each ring's gate can read the install success rate
from the reports export (`deviceManagement/reports/exportJobs`, the `intuneInstalls` analysis
provider). Going back takes out the ring targets the release added. Credentials: Azure AD
client credentials in `$DURABLE_ROLLOUTS_INTUNE_CREDENTIALS`, read by the activities only.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field

from models.durations import Duration
from models.rings import Ring, check_rings
from models.specbase import Message, SpecModel

GROUP, EXCLUSION, ALL_DEVICES = "groupAssignmentTarget", "exclusionGroupAssignmentTarget", "allDevicesAssignmentTarget"
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
    """One assignment of the app as Graph holds it: kept whole in `graph` and sent back exactly."""

    group_id: str = Field("", description="the target's group; empty for all devices or all users")
    intent: str
    deadline: str = Field("", description="ISO 8601, or empty")
    target: str = Field("", description="the target's type (groupAssignmentTarget, exclusionGroupAssignmentTarget, "
                                        "allDevicesAssignmentTarget, …); empty in histories from before it was kept")
    graph: dict[str, Any] = Field(default_factory=dict, description="the assignment as Graph listed it, without its id")

    def key(self) -> tuple[str, str]:
        """What it targets: (target type, group); ones recorded without a type are group or all-device targets."""
        return (self.target or (GROUP if self.group_id else ALL_DEVICES)), self.group_id

    def shown(self) -> str:
        kind, group = self.key()
        return {GROUP: group, EXCLUSION: f"not {group}", ALL_DEVICES: "*",
                "allLicensedUsersAssignmentTarget": "all users"}.get(kind, kind)


def ring_key(group: str) -> tuple[str, str]:
    """The target of a ring's group ("*": all devices)."""
    return (ALL_DEVICES, "") if group == "*" else (GROUP, group)


class AssignInput(Message):
    channel: IntuneChannel
    groups: list[str] = Field(description="the ring groups wanted (\"*\": all devices), earlier rings' first")
    keep: list[Assignment] = Field(default_factory=list, description="assignments from before the release, kept")
    assigned: list[str] | None = Field(None, description="the ring groups this release has assigned so far (None: "
                                                         "histories from before it was sent — every ring's)")
    app_type: str = Field("", description="the app's @odata.type as prepare read it (an app's type never changes); "
                                          "empty: read it again")
    earlier: list[str] | None = Field(None, description="ring groups assigned before this call and seen assigned by a "
                                                        "read since: one missing from Intune now was removed there and "
                                                        "is not assigned again (None: histories from before it was "
                                                        "sent — it is)")


class AssignmentSet(Message):
    assignments: list[Assignment] = Field(default_factory=list)
    changed: bool = False
    app_type: str = Field("", description="the app's @odata.type (win32LobApp, iosStoreApp, …)")
    left_out: list[str] = Field(default_factory=list, description="earlier rings' groups someone removed in Intune "
                                                                  "during the release: not assigned again")
    present: list[str] = Field(default_factory=list, description="the ring groups asked for that the read before this "
                                                                 "assign found assigned")

    def groups(self) -> list[str]:
        return [a.shown() for a in self.assignments]
