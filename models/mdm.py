"""The generic MDM channel: a Release's `spec.channel.mdm` block, and its activities' wire models.

The platform's own MDM REST shape (`devtools/localcluster/stores/mdm-openapi.yaml`): the package uploaded once
(an idempotency key: its sha256), a deployment policy (install and update behaviour, network
requirement, install deadline) with an app-protection policy, its device groups replaced ring by ring,
its assignment status read after each change. Unlike Intune it can pause a policy: a halt pauses
installs. The API token: `$DURABLE_ROLLOUTS_MDM_TOKEN`, read by the activities only.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field

from models.durations import Duration
from models.rings import Ring, check_rings
from models.specbase import DnsLabel, Message, SpecModel


class AppProtection(SpecModel):
    require_pin: bool = True
    block_copy_paste: bool = True
    minimum_os_version: str | None = Field(None, pattern=r"^[0-9]+(\.[0-9]+){0,2}$")


class MdmChannel(SpecModel):
    """`spec.channel.mdm`: a deployment policy on the MDM server, staged by rings of device groups."""

    server: str = Field(pattern=r"^https?://", description="the MDM server's base URL")
    policy: DnsLabel = Field(description="the deployment policy's name (one per release)")
    package_name: str = Field(min_length=1, max_length=255, description="the app's identifier on devices")
    rings: list[Ring] = Field(min_length=1, max_length=10)
    install_behavior: Literal["install", "installAndReplace"] = "installAndReplace"
    update_behavior: Literal["automatic", "notify", "deferred"] = "automatic"
    network: Literal["any", "wifiOnly", "unmetered"] = "any"
    deadline: Duration = Field(timedelta(days=2), description="install by, after a device's ring is added")
    protection: AppProtection | None = None

    ARTIFACT_FIELDS: ClassVar[tuple[str, ...]] = ("file", "version")

    def artifact_fields(self) -> tuple[str, ...]:
        return self.ARTIFACT_FIELDS

    def check(self, spec: Any) -> None:
        check_rings(self.rings, spec, "mdm")
        if self.deadline > timedelta(days=30) or self.deadline.total_seconds() % 3600:
            raise ValueError("@channel.mdm.deadline: whole hours, at most 30 days")

    def describe(self) -> str:
        return f"mdm:{self.server.split('://', 1)[1].rstrip('/')}/{self.policy}"


# ---- activity wire models ----------------------------------------------------------------------------


class MdmDeployInput(Message):
    channel: MdmChannel
    path: str
    version: str


class MdmGroupsInput(Message):
    channel: MdmChannel
    policy_id: str
    groups: list[str] = Field(default_factory=list, description="\"*\": all devices")
    state: Literal["active", "paused"] = "active"


class MdmStatus(Message):
    policy_id: str
    package_id: str = ""
    uploaded: bool = False
    state: str = "active"
    groups: list[str] = Field(default_factory=list)
    targeted: int = 0
    installed: int = 0
    failed: int = 0
    pending: int = 0
