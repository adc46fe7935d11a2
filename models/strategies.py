"""The strategies' blocks of the spec: canary steps, blue-green, A/B test, rolling update, recreate."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, PlainValidator, ValidationError, WithJsonSchema, field_validator, model_validator

from models.analysis import AnalysisStep, BackgroundAnalysis
from models.approvals import Approval
from models.durations import Duration, format_duration
from models.routing import (
    ReplicasRouting,
    RouteMatch,
    SetCanaryScale,
    SetHeaderRoute,
    SetMirrorRoute,
    TrafficRouting,
)
from models.specbase import DnsLabel, OneOf, SpecModel, describe_errors


class Pause(SpecModel):
    duration: Duration | None = Field(None, description="timed pause; absent: wait until promoted")


STEP_KINDS = ("setWeight", "pause", "approval", "analysis", "setCanaryScale", "setHeaderRoute", "setMirrorRoute")


class CanaryStep(OneOf):
    CHOICES: ClassVar[tuple[str, ...]] = STEP_KINDS
    WHAT: ClassVar[str] = "step"

    set_weight: int | None = Field(None, ge=0, le=100, description="percentage of traffic to the canary")
    pause: Pause | None = None
    approval: Approval | None = None
    analysis: AnalysisStep | None = None
    set_canary_scale: SetCanaryScale | None = None
    set_header_route: SetHeaderRoute | None = None
    set_mirror_route: SetMirrorRoute | None = None

    @property
    def kind(self) -> str:
        return self.chosen_key

    def describe(self) -> str:
        """One line for status and the Web UI: `setWeight 20`, `pause 30s`, `approval (2 of group:sre)`."""
        kind = self.kind
        if self.set_weight is not None:
            return f"setWeight {self.set_weight}"
        if self.pause is not None:
            return f"pause {format_duration(self.pause.duration)}" if self.pause.duration is not None else "pause"
        if self.approval is not None:
            who = f"{self.approval.min_approvals} of {', '.join(self.approval.approvers)}" if self.approval.approvers else ""
            return f"approval{' ' + self.approval.description if self.approval.description else ''}" + (
                f" ({who})" if who else "")
        if self.analysis is not None:
            return "analysis " + ", ".join(t.template_name for t in self.analysis.templates)
        return f"{kind} {getattr(self.chosen_value, 'name', '')}".strip()


class CanaryStrategy(SpecModel):
    """The candidate beside the stable version, its share of traffic raised step by step. The Services and
    the router are a Kubernetes target's (an ECS target routes through its load balancer); which steps the
    chosen router or target can do is checked with the whole spec (models/capabilities.py)."""

    stable_service: DnsLabel | None = Field(None, description="Kubernetes: the Service of the stable pods")
    canary_service: DnsLabel | None = Field(None, description="Kubernetes: the Service of the canary pods")
    traffic_routing: TrafficRouting = Field(default_factory=lambda: TrafficRouting(replicas=ReplicasRouting()),
                                            description="Kubernetes: the router (default: the replica ratio)")
    steps: list[CanaryStep] = Field(min_length=1, max_length=200)
    dynamic_stable_scale: bool = Field(
        False, description="scale stable down as the canary takes traffic (routers with their own weights only)"
    )
    analysis: BackgroundAnalysis | None = Field(None, description="runs across the steps from startingStep on")

    @model_validator(mode="after")
    def _check(self) -> CanaryStrategy:
        if self.stable_service is not None and self.stable_service == self.canary_service:
            raise ValueError("@canaryService: must be a different Service from stableService")
        previous: tuple[int, int] | None = None
        for index, step in enumerate(self.steps):
            if step.set_weight is None:
                continue
            if previous is not None and step.set_weight <= previous[1]:
                raise ValueError(
                    f"@steps[{index}].setWeight: {step.set_weight} must be greater than "
                    f"steps[{previous[0]}].setWeight {previous[1]}: canary weights only go up"
                )
            previous = (index, step.set_weight)
        return self


def _int_or_percent(value: Any) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and re.fullmatch(r"(100|[1-9]?[0-9])%", value):
        return value
    raise ValueError(f"{value!r} is not a number of pods or a percentage like 25%")


IntOrPercent = Annotated[
    int | str,
    PlainValidator(_int_or_percent),
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^[0-9]+%$"}]}),
]


class RollingUpdateStrategy(SpecModel):
    """The Deployment's own rolling update, gated on readiness, undone automatically when it fails."""

    max_surge: IntOrPercent = "25%"
    max_unavailable: IntOrPercent = 0
    analysis: AnalysisStep | None = Field(None, description="after the roll-out: Failed undoes it")

    @model_validator(mode="after")
    def _can_progress(self) -> RollingUpdateStrategy:
        if self.max_surge in (0, "0%") and self.max_unavailable in (0, "0%"):
            raise ValueError("@maxUnavailable: maxSurge and maxUnavailable cannot both be 0 (nothing could move)")
        return self


class RecreateStrategy(SpecModel):
    """All old pods stop before any new one starts (for versions that cannot run side by side)."""


class GradualShift(SpecModel):
    """Blue-green without a hard switch: the preview's share of traffic goes up step by step, held at each."""

    weights: list[int] = Field([10, 25, 50, 75, 100], min_length=1, max_length=20)
    hold: Duration = Field(default_factory=lambda: timedelta(minutes=5), description="how long each weight is held")

    @field_validator("weights")
    @classmethod
    def _rising(cls, weights: list[int]) -> list[int]:
        if any(not 0 < w <= 100 for w in weights) or weights != sorted(set(weights)):
            raise ValueError(f"{weights} must rise strictly, each between 1 and 100")
        return weights


class BlueGreenStrategy(SpecModel):
    """The new version runs beside the old behind the preview Service; promotion switches the active
    Service to it at once, and the old version stays warm for `scaleDownDelaySeconds` (instant switch-back)."""

    active_service: DnsLabel | None = Field(None, description="Kubernetes: the Service production traffic uses")
    preview_service: DnsLabel | None = Field(None, description="Kubernetes: the Service the preview is tested on")
    preview_replica_count: int | None = Field(
        None, ge=1, description="pods of the new version before promotion (default: the full size)"
    )
    auto_promotion_enabled: bool = Field(True, description="false: wait for promote (or for `approval`)")
    approval: Approval | None = Field(None, description="promotion needs this approval (implies no auto-promotion)")
    auto_promotion_seconds: int | None = Field(
        None, ge=0, le=86400, description="with auto-promotion: promote after this long (promote earlier by hand)"
    )
    scale_down_delay_seconds: int = Field(30, ge=0, le=86400, description="old version kept warm after the switch")
    abort_scale_down_delay_seconds: int = Field(30, ge=0, le=86400, description="preview kept after an abort")
    traffic_routing: TrafficRouting | None = Field(
        None, description="for gradualShift: a router whose stable/canary destinations are activeService/previewService"
    )
    gradual_shift: GradualShift | None = Field(None, description="shift traffic step by step instead of a hard switch")
    pre_promotion_analysis: AnalysisStep | None = Field(None, description="on the preview, before the switch")
    post_promotion_analysis: AnalysisStep | None = Field(
        None, description="after the switch, while the old version is warm: Failed switches back"
    )

    @model_validator(mode="after")
    def _check(self) -> BlueGreenStrategy:
        if self.active_service is not None and self.active_service == self.preview_service:
            raise ValueError("@previewService: must be a different Service from activeService")
        if not self.auto_promotion_enabled and self.auto_promotion_seconds is not None:
            raise ValueError("@autoPromotionSeconds: has no effect with autoPromotionEnabled: false")
        return self


class AbTestStrategy(SpecModel):
    """A test audience (matched by header or cookie) is served the new version while everyone else
    stays on stable, for `duration` or until someone decides (promote or abort)."""

    stable_service: DnsLabel | None = Field(None, description="Kubernetes: the Service of the stable pods")
    canary_service: DnsLabel | None = Field(None, description="Kubernetes: the Service of the test audience's pods")
    traffic_routing: TrafficRouting | None = Field(None, description="Kubernetes: a router that routes by header")
    audience: list[RouteMatch] = Field(min_length=1, max_length=8, description="who sees the new version")
    replicas: int = Field(1, ge=1, description="pods of the new version serving the audience")
    duration: Duration | None = Field(None, description="how long the test runs; absent: until decided")
    after_duration: Literal["wait", "promote", "abort"] = Field(
        "wait", description="when the duration is over: wait for a decision, promote, or abort"
    )

    def as_canary(self) -> CanaryStrategy:
        """The test as canary steps: scale, header route, the test itself, then promotion."""
        steps: list[dict[str, Any]] = [
            {"setCanaryScale": {"replicas": self.replicas}},
            {"setHeaderRoute": {"name": "ab-test", "match": [m.model_dump(by_alias=True, exclude_none=True)
                                                            for m in self.audience]}},
            {"pause": {"duration": self.duration} if self.duration is not None else {}},
        ]
        if self.duration is not None and self.after_duration == "wait":
            steps.append({"pause": {}})
        routing = {"trafficRouting": self.traffic_routing.model_dump(by_alias=True, exclude_none=True)} \
            if self.traffic_routing is not None else {}
        return CanaryStrategy.model_validate({
            "stableService": self.stable_service, "canaryService": self.canary_service, **routing, "steps": steps,
        })

    @model_validator(mode="after")
    def _check(self) -> AbTestStrategy:
        if self.duration is None and self.after_duration != "wait":
            raise ValueError(f"@afterDuration: {self.after_duration} needs a duration")
        try:
            self.as_canary()
        except ValidationError as error:
            problem = describe_errors(error)[0]
            raise ValueError("@audience: " + problem.split(": ", 1)[-1]) from None
        return self
