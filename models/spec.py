"""The rollout spec: an Argo-Rollouts-like YAML document, validated before anything starts.

`load_rollout(path)` reads and validates a file; every problem is reported with its field path
(`spec.strategy.canary.steps[2].setWeight: ...`) through `SpecError`.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from models.analysis import AnalysisSpec, AnalysisStep
from models.approvals import Approval, ApprovalPolicy
from models.capabilities import target_problem
from models.documents import MAX_SPEC_BYTES, SpecError, load_document, parse_as, schema_of  # noqa: F401 - part of the spec's API
from models.durations import Duration
from models.names import rollout_id
from models.notifications import NotificationChannel
from models.presets import HASH_ROLES, resolve
from models.schedule import ExecutionWindows
from models.specbase import DnsLabel, OneOf, SpecModel
from models.strategies import (  # noqa: F401 - the strategies are part of the spec's public names
    AbTestStrategy,
    BlueGreenStrategy,
    CanaryStep,
    CanaryStrategy,
    GradualShift,
    Pause,
    RecreateStrategy,
    RollingUpdateStrategy,
)
from models.targets import EcsTarget, KubernetesTarget, Target  # noqa: F401 - part of the spec's public names
from models.webhooks import Webhook

API_VERSION = "rollouts.durable.dev/v1alpha1"

_IMAGE = re.compile(
    r"^(?P<repo>[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)


class Metadata(SpecModel):
    name: DnsLabel
    environment: DnsLabel


STRATEGIES = ("canary", "blueGreen", "abTest", "rollingUpdate", "recreate")


class Strategy(OneOf):
    CHOICES: ClassVar[tuple[str, ...]] = STRATEGIES
    WHAT: ClassVar[str] = "strategy"

    canary: CanaryStrategy | None = None
    blue_green: BlueGreenStrategy | None = None
    ab_test: AbTestStrategy | None = None
    rolling_update: RollingUpdateStrategy | None = None
    recreate: RecreateStrategy | None = None

    @property
    def name(self) -> str:
        return self.chosen_key


class RollbackWindow(SpecModel):
    """After a Healthy rollout, keep the previous revisions running (not serving) for `duration`, so
    `rollout undo` switches back at once."""

    duration: Duration
    revisions: int = Field(1, ge=1, le=5, description="how many previous revisions stay warm")
    service: DnsLabel | None = Field(
        None, description="the Service that selects the pods (default: the strategy's stable or active Service)"
    )


class RolloutSpecBody(SpecModel):
    target: Target
    image: str = Field(min_length=1, description="the new version's image, with a tag or digest")
    strategy: Strategy
    progress_deadline_seconds: int = Field(600, ge=10, le=86400)
    concurrency_policy: Literal["reject", "supersede"] = Field(
        "reject", description="starting while this rollout runs: refuse, or abort the running one cleanly first"
    )
    rollback_window: RollbackWindow | None = None
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec, description="analysis templates the steps name")
    webhooks: list[Webhook] = Field(default_factory=list, max_length=20, description="Flagger's webhook types (canary)")
    approval: Approval | None = Field(None, description="an approval before the rollout changes anything (any strategy)")
    execution_windows: ExecutionWindows | None = Field(
        None, description="steps start only inside these windows and outside freezes")
    notifications: list[NotificationChannel] = Field(default_factory=list, max_length=10)

    def approvals(self) -> list[tuple[str, ApprovalPolicy]]:
        """Every approval the rollout can wait for, with its field path."""
        st, found = self.strategy, []
        if self.approval is not None:
            found.append(("approval", self.approval))
        for index, step in enumerate(st.canary.steps if st.canary else []):
            if step.approval is not None:
                found.append((f"strategy.canary.steps[{index}].approval", step.approval))
        if st.blue_green and st.blue_green.approval is not None:
            found.append(("strategy.blueGreen.approval", st.blue_green.approval))
        return found

    def step_descriptions(self) -> list[str]:
        """What each step of the strategy does, as the status and the Web UI list them."""
        st = self.strategy
        chosen = st.canary or (st.ab_test.as_canary() if st.ab_test else None)
        if chosen is not None:
            return [step.describe() for step in chosen.steps]
        if st.blue_green:
            bg = st.blue_green
            gate = "approval" if bg.approval else "auto-promote" if bg.auto_promotion_enabled else "wait for promote"
            switch = f"shift {bg.gradual_shift.weights}" if bg.gradual_shift else \
                f"switch {bg.active_service or 'production traffic'}"
            return ["deploy preview", gate, switch, "keep previous version warm", "complete"]
        return [f"{st.name} to {self.image}"]

    @model_validator(mode="after")
    def _reminders_go_somewhere(self) -> RolloutSpecBody:
        for path, policy in self.approvals():
            if policy.remind_every is not None and not self.notifications:
                raise ValueError(f"@{path}.remindEvery: reminders need spec.notifications")
        return self

    @property
    def service(self) -> str | None:
        """The Service that selects the target's pods, where the spec says."""
        if self.rollback_window and self.rollback_window.service:
            return self.rollback_window.service
        st = self.strategy
        if st.blue_green:
            return st.blue_green.active_service
        chosen = st.canary or st.ab_test
        return chosen.stable_service if chosen else None

    def analysis_steps(self) -> list[tuple[str, AnalysisStep]]:
        """Every place the strategy runs analysis, with its field path."""
        st, found = self.strategy, []
        if st.canary and st.canary.analysis:
            found.append(("strategy.canary.analysis", st.canary.analysis))
        for index, step in enumerate(st.canary.steps if st.canary else []):
            if step.analysis is not None:
                found.append((f"strategy.canary.steps[{index}].analysis", step.analysis))
        if st.blue_green:
            for field in ("pre_promotion_analysis", "post_promotion_analysis"):
                if getattr(st.blue_green, field) is not None:
                    found.append((f"strategy.blueGreen.{to_camel(field)}", getattr(st.blue_green, field)))
        if st.rolling_update and st.rolling_update.analysis:
            found.append(("strategy.rollingUpdate.analysis", st.rolling_update.analysis))
        return found

    @model_validator(mode="after")
    def _analysis_resolves(self) -> RolloutSpecBody:
        shown = {role: "<hash>" for role in HASH_ROLES.get(self.strategy.name, ())}  # read when the analysis starts
        for path, step in self.analysis_steps():
            try:
                resolve(self.analysis.templates, step, shown)
            except ValueError as error:
                raise ValueError(f"@{path}: {error}") from None
        return self

    @model_validator(mode="after")
    def _target_can(self) -> RolloutSpecBody:
        problem = target_problem(self)
        if problem:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _window_service(self) -> RolloutSpecBody:
        if self.rollback_window and self.service is None and self.target.kubernetes is not None:
            raise ValueError(f"@rollbackWindow.service: required with {self.strategy.name} "
                             "(the Service that selects the Deployment's pods)")
        return self

    @field_validator("image")
    @classmethod
    def _check_image(cls, image: str) -> str:
        match = _IMAGE.match(image)
        if not match:
            raise ValueError(f"{image!r} is not a valid image reference")
        if not match.group("tag") and not match.group("digest"):
            raise ValueError(f"{image!r} must name a tag or digest (a rollout needs a fixed version)")
        return image


class Rollout(SpecModel):
    api_version: Literal["rollouts.durable.dev/v1alpha1"]
    kind: Literal["Rollout"]
    metadata: Metadata
    spec: RolloutSpecBody

    @property
    def rollout_id(self) -> str:
        return rollout_id(self.metadata.environment, self.metadata.name)

    # What the control plane shows of any document it runs (a Release has the same three).
    @property
    def strategy_name(self) -> str:
        return self.spec.strategy.name

    @property
    def target_description(self) -> str:
        return self.spec.target.describe()

    @property
    def version(self) -> str:
        return self.spec.image

    def digest(self) -> str:
        """What identifies this very spec: a retried `rollout start` of the same file finds the same digest."""
        return hashlib.sha256(self.model_dump_json(by_alias=True).encode()).hexdigest()[:16]


def parse_rollout(document: Any, source: str = "<spec>", as_document: bool = True) -> Rollout:
    return parse_as(Rollout, document, source, "Rollout", as_document)


def load_rollout(path: str | Path) -> Rollout:
    """Read one Rollout document (guarded YAML, see models/documents.py) and validate it."""
    return parse_rollout(load_document(path, "Rollout"), str(path))


def json_schema() -> dict[str, Any]:
    return schema_of(Rollout, "rollout", "durable-rollouts Rollout")
