"""`kind: Release`: a staged release of an artifact (or a flag variant) to a channel, in phases.

```yaml
apiVersion: rollouts.durable.dev/v1alpha1
kind: Release
metadata: {name: desktop-app, environment: production}
spec:
  artifact: {file: dist/app-1.4.0.tar.gz, version: 1.4.0, platform: linux-x86_64}
  channel:
    updater: {repository: {bucket: updates, prefix: desktop-app}, channel: stable}
  phases:
    - {percent: 1, bake: 6h, analysis: {templates: [{templateName: crash-rate}]}}
    - {percent: 10, bake: 1d}
    - {percent: 50, bake: 1d, approval: {approvers: [release-managers]}}
  onFailure: rollback
```
Each phase sets the exposure, bakes (a durable timer), then passes its gate (analysis, approval);
after the last phase the release goes to 100 %. The channel (`updater`, `flag`) is one block, each
its own model and activity package; the workflow never looks inside.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from pydantic import Field, ValidationInfo, model_validator

from models.analysis import AnalysisSpec, AnalysisStep, Provider
from models.approvals import Approval, ApprovalPolicy
from models.appstore import AppStoreChannel
from models.documents import SpecError, from_document, load_document, parse_as, schema_of  # noqa: F401 - SpecError: its API
from models.durations import Duration, format_duration
from models.flags import FlagChannel
from models.intune import IntuneChannel
from models.mdm import MdmChannel
from models.msstore import MicrosoftStoreChannel
from models.names import CHANNEL_FAMILY, rollout_id
from models.notifications import NotificationChannel
from models.play import PlayChannel
from models.presets import resolve
from models.schedule import ExecutionWindows
from models.spec import Metadata
from models.specbase import OneOf, SpecModel
from models.starter import StartedBy
from models.updater import UpdaterChannel

CHANNELS = ("updater", "flag", "googlePlay", "appStore", "microsoftStore", "intune", "mdm")


class ChannelSpec(Protocol):
    """What every channel block says of itself: which artifact fields it needs, and which phases it
    cannot honour (a store's fixed schedule, whole percents)."""

    def artifact_fields(self) -> tuple[str, ...]: ...

    def check(self, spec: ReleaseSpecBody) -> None:
        """Raise ValueError("@path: why") for what this channel cannot do."""

    def describe(self) -> str: ...


class Channel(OneOf):
    CHOICES: ClassVar[tuple[str, ...]] = CHANNELS
    WHAT: ClassVar[str] = "release channel"

    updater: UpdaterChannel | None = None
    flag: FlagChannel | None = None
    google_play: PlayChannel | None = None
    app_store: AppStoreChannel | None = None
    microsoft_store: MicrosoftStoreChannel | None = None
    intune: IntuneChannel | None = None
    mdm: MdmChannel | None = None

    @property
    def kind(self) -> str:
        return self.chosen_key

    @property
    def family(self) -> str:
        """The target family whose task queue runs this channel's releases (models/names.py)."""
        return CHANNEL_FAMILY[self.chosen_key]

    def describe(self) -> str:
        return self.chosen_value.describe()

    @property
    def spec(self) -> ChannelSpec:
        return self.chosen_value


class ReleaseArtifact(SpecModel):
    """What is released: a file with its version and platform (updater), or a flag variant (flag)."""

    file: str | None = Field(None, min_length=1, description="the artifact on the publisher's disk")
    version: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[0-9A-Za-z][0-9A-Za-z.+_-]*$")
    platform: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    variant: str | None = Field(None, min_length=1, max_length=63)
    build: str | None = Field(None, pattern=r"^[0-9]+(\.[0-9]+){0,2}$",
                              description="the store's build number (App Store: CFBundleVersion)")

    def describe(self) -> str:
        if self.variant is not None:
            return f"variant {self.variant}"
        platform = f" ({self.platform})" if self.platform else f" ({self.build})" if self.build else ""
        if self.file is None:
            return f"{self.version}{platform}"
        return f"{Path(self.file).name} {self.version}{platform}"


class ReleasePhase(SpecModel):
    """One phase: the exposure (percent, or basis points for finer steps), how long it bakes, its gate."""

    percent: float | None = Field(None, gt=0, le=100)
    basis_points: int | None = Field(None, ge=1, le=10_000)
    bake: Duration = Field(timedelta(0), description="how long the phase runs before its gate")
    analysis: AnalysisStep | None = None
    approval: Approval | None = None

    @model_validator(mode="after")
    def _one_exposure(self, info: ValidationInfo) -> ReleasePhase:
        if (self.percent is None) == (self.basis_points is None):
            raise ValueError("a phase gives exactly one of percent, basisPoints")
        if from_document(info) and self.points == 0:
            raise ValueError(f"@percent: {self.percent:g}% rounds to 0 basis points: nobody would get it")
        if from_document(info) and self.percent is not None and abs(self.percent * 100 - self.points) > 1e-6:
            raise ValueError(f"@percent: {self.percent:g}% is finer than a basis point, the 0.01% a phase can express")
        return self

    @property
    def points(self) -> int:
        return self.basis_points if self.basis_points is not None else round(self.percent * 100)

    def describe(self) -> str:
        text = f"{self.points / 100:g}%"
        if self.bake:
            text += f" for {format_duration(self.bake)}"
        if self.analysis:
            text += f", analysis {', '.join(t.template_name for t in self.analysis.templates)}"
        if self.approval:
            text += ", approval"
        return text


MAX_ADOPTION_CHECKS = 200


class Adoption(SpecModel):
    """After the last phase: wait until `spec.observe` measures this share of the audience running the
    release before it ends Healthy (100% means every device may install it; adoption is how many did)."""

    minimum: float = Field(gt=0, le=100, strict=True, description="percent of the audience that must run the release")
    within: Duration = Field(timedelta(days=7), description="how long to wait; then it ends Degraded "
                                                            "(AdoptionBelowMinimum), the release still offered")
    every: Duration = Field(timedelta(hours=1), description="how often to measure while waiting")


class ReleaseSpecBody(SpecModel):
    artifact: ReleaseArtifact
    channel: Channel
    phases: list[ReleasePhase] = Field(min_length=1, max_length=50)
    on_failure: Literal["halt", "rollback"] = Field(
        "rollback", description="a failed gate: halt (no new installs; a person decides) or roll back")
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec, description="analysis templates the phases name")
    approval: Approval | None = Field(None, description="an approval before anything is published")
    execution_windows: ExecutionWindows | None = None
    notifications: list[NotificationChannel] = Field(default_factory=list, max_length=10)
    observe: Provider | None = Field(
        None, description="how much of the audience runs the release, in percent (prometheus or web; "
                          "{{args.version}} is the artifact's version): measured when each phase's bake ends")
    adoption: Adoption | None = Field(None, description="wait for this much measured adoption before Healthy")

    rollback_window: ClassVar[None] = None  # a release rolls back by a new release, not a warm copy

    def approvals(self) -> list[tuple[str, ApprovalPolicy]]:
        found = [("approval", self.approval)] if self.approval is not None else []
        return found + [(f"phases[{i}].approval", p.approval) for i, p in enumerate(self.phases) if p.approval]

    def step_descriptions(self) -> list[str]:
        return [p.describe() for p in self.phases]

    @model_validator(mode="after")
    def _checks(self, info: ValidationInfo) -> ReleaseSpecBody:
        previous = 0
        for index, phase in enumerate(self.phases):
            if phase.points < previous:
                raise ValueError(f"@phases[{index}]: exposure {phase.points / 100:g}% is below the phase before "
                                 f"({previous / 100:g}%): each phase is a superset of the last")
            if phase.points == previous and from_document(info):
                raise ValueError(f"@phases[{index}]: the same exposure as the phase before ({previous / 100:g}%): "
                                 "one phase, with a longer bake (its analysis and approval gate it together)")
            previous = phase.points
            if phase.analysis is not None:
                try:
                    resolve(self.analysis.templates, phase.analysis)
                except ValueError as error:
                    raise ValueError(f"@phases[{index}].analysis: {error}") from None
        a, kind, channel = self.artifact, self.channel.kind, self.channel.spec
        needed = channel.artifact_fields()
        for field in needed:
            if getattr(a, field) is None:
                raise ValueError(f"@artifact.{field}: required for the {kind} channel")
        for field in (f for f in ReleaseArtifact.model_fields if f not in needed):
            if getattr(a, field) is not None:
                raise ValueError(f"@artifact.{field}: not used by the {kind} channel")
        channel.check(self)
        if from_document(info) and self.channel.flag is not None:
            self.channel.flag.check_variants(self)
        for path, policy in self.approvals():
            if policy.remind_every is not None and not self.notifications:
                raise ValueError(f"@{path}.remindEvery: reminders need spec.notifications")
        if self.adoption is not None and self.observe is None:
            raise ValueError("@adoption: adoption is measured by spec.observe: give it (a prometheus or web query)")
        if self.adoption is not None and not timedelta(minutes=1) <= self.adoption.every <= self.adoption.within:
            raise ValueError("@adoption.every: at least 1m, and no longer than adoption.within")
        if (from_document(info) and self.adoption is not None
                and self.adoption.within / self.adoption.every > MAX_ADOPTION_CHECKS):
            raise ValueError(f"@adoption.every: at most {MAX_ADOPTION_CHECKS} measurements within adoption.within "
                             "(the release's history holds each)")
        if self.observe is not None and self.observe.name == "judge":
            raise ValueError("@observe: a share is read from prometheus or web, not judge")
        return self


class Release(SpecModel):
    api_version: Literal["rollouts.durable.dev/v1alpha1"]
    kind: Literal["Release"]
    metadata: Metadata
    spec: ReleaseSpecBody

    strategy_name: ClassVar[str] = "staged"

    @property
    def rollout_id(self) -> str:
        return rollout_id(self.metadata.environment, self.metadata.name)

    @property
    def target_description(self) -> str:
        return self.spec.channel.describe()

    @property
    def version(self) -> str:
        return self.spec.artifact.describe()

    def digest(self) -> str:
        return hashlib.sha256(self.model_dump_json(by_alias=True).encode()).hexdigest()[:16]


def parse_release(document: Any, source: str = "<spec>") -> Release:
    return parse_as(Release, document, source, "Release")


def load_release(path: str | Path) -> Release:
    return parse_release(load_document(path, "Release"), str(path))


class ReleaseInput(StartedBy):
    """`StagedRelease`'s input: the Release and who asked (models/starter.py)."""

    release: Release
    action: Literal["release"] = "release"

    @property
    def document(self) -> Release:
        return self.release


def json_schema() -> dict[str, Any]:
    return schema_of(Release, "release", "durable-rollouts Release")
