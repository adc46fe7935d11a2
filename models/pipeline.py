"""`kind: Pipeline`: one release bundle through ordered stages (dev → staging → prod), each stage a Rollout
template run on its targets in waves, with gates before a stage.

    apiVersion: rollouts.durable.dev/v1alpha1
    kind: Pipeline
    metadata: {name: checkout, environment: platform}
    spec:
      bundle: {images: {web: registry.example.com/shop/web:1.4.0}}   # a tag is pinned to its digest at start
      stages:
        - name: dev
          rollout: {...a Rollout document...}        # or rolloutFile: dev.yaml (read by the CLI at start)
          waves: [{targets: [{context: dev-eu}]}]
        - name: prod
          rolloutFile: prod.yaml
          gate: {soak: 1h, approval: {approvers: [group:release-managers], minApprovals: 2}}
          waves:
            - {targets: [{context: prod-eu, region: eu}, {context: prod-us, region: us}], maxParallel: 2}
          bake: 30m
          failFast: true
          onFailure: rollbackCompleted

The workflow flattens it into steps (a gate, then each wave) so the control plane — decisions, status,
search attributes, the Web UI — treats a pipeline like any rollout (models/plan.py).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from models.analysis import AnalysisSpec, AnalysisStep, Arg, Metric
from models.approvals import Approval, ApprovalPolicy
from models.documents import SpecError, from_document, parse_as, schema_of
from models.durations import Duration, format_duration
from models.notifications import NotificationChannel
from models.pipeline_status import CheckResult, PipelineTree, StageState, TargetState, WaveState  # noqa: F401 - its API
from models.placement import Target, placed
from models.presets import HASH_ROLES, resolve
from models.schedule import ExecutionWindows
from models.spec import _IMAGE, Metadata, Rollout, parse_rollout
from models.specbase import DnsLabel, DnsSubdomain, Message, SpecModel
from models.starter import StartedBy

MAX_TARGETS = 200  # in one stage


def pipeline_id(environment: str, name: str) -> str:
    return f"pipeline/{environment}/{name}"


MAX_STAGES = 20


class Bundle(SpecModel):
    """What the pipeline ships, pinned at start: every image's tag is resolved to its digest once."""

    images: dict[DnsLabel, str] = Field(min_length=1, max_length=20, description="name -> image (tag or digest)")

    @field_validator("images")
    @classmethod
    def _references(cls, images: dict[str, str]) -> dict[str, str]:
        for name, image in images.items():
            match = _IMAGE.match(image)
            if not match:
                raise ValueError(f"@{name}: {image!r} is not a valid image reference")
            if not match.group("tag") and not match.group("digest"):
                raise ValueError(f"@{name}: {image!r} must name a tag or digest")
        return images


class Check(SpecModel):
    """A pre-deployment check: one measurement of a metric (any analysis provider — `kubernetes` for a
    cluster's nodes, `web` for migrations, dependencies, scan results); it must be Successful."""

    name: DnsLabel
    metric: Metric


class Gate(SpecModel):
    """What must hold before a stage starts, checked in this order."""

    checks: list[Check] = Field(default_factory=list, max_length=20)
    soak: Duration | None = Field(None, description="the bundle stayed verified in the stage before for this long")
    execution_windows: ExecutionWindows | None = None
    analysis: AnalysisStep | None = None
    approval: Approval | None = None

    def empty(self) -> bool:
        return not (self.checks or self.soak or self.execution_windows or self.analysis or self.approval)

    def describe(self) -> str:
        parts = [f"checks {', '.join(c.name for c in self.checks)}"] if self.checks else []
        parts += [f"soak {format_duration(self.soak)}"] if self.soak else []
        parts += ["execution window"] if self.execution_windows else []
        parts += [f"analysis {', '.join(t.template_name for t in self.analysis.templates)}"] if self.analysis else []
        if self.approval:
            who = ", ".join(self.approval.approvers) or "anyone"
            parts.append(f"approval {self.approval.min_approvals} of {who}")
        return ", ".join(parts)


class Wave(SpecModel):
    name: str = Field("", max_length=63)
    targets: list[Target] = Field(min_length=1, max_length=MAX_TARGETS)
    max_parallel: int = Field(1, ge=1, le=100, description="targets per round (a round completes before the next)")


class Overrides(SpecModel):
    """Per-stage changes to its Rollout template."""

    namespace: DnsLabel | None = None
    deployment: DnsSubdomain | None = None
    args: list[Arg] = Field(default_factory=list, description="analysis arguments set on every analysis step")


class Stage(SpecModel):
    name: DnsLabel
    rollout: dict[str, Any] | None = Field(None, description="the Rollout template, inline")
    rollout_file: str | None = Field(None, description="the Rollout template's file (the CLI reads it at start)")
    image: DnsLabel | None = Field(None, description="which bundle image (default: the bundle's only one)")
    overrides: Overrides = Field(default_factory=Overrides)
    gate: Gate = Field(default_factory=Gate)
    waves: list[Wave] = Field(min_length=1, max_length=50)
    bake: Duration | None = Field(None, description="between waves")
    fail_fast: bool = Field(True, description="a failed target: start no other, abort the running ones")
    max_failures: int = Field(0, ge=0, description="failed targets tolerated before the stage fails (no failFast)")
    on_failure: Literal["stop", "rollbackCompleted"] = "stop"
    approve: Literal["stage", "wave"] = Field("stage", description="gate.approval once, or before every wave")
    allow_zero_replicas: bool = Field(False, description="a target whose Deployment wants 0 pods counts as verified "
                                                         "(no pod runs the revision to show it)")

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> Stage:
        if (self.rollout is None) == (self.rollout_file is None):
            raise ValueError("@rollout: give the template inline (rollout) or by file (rolloutFile), one of them")
        if self.rollout is None and from_document(info):  # the CLI reads every file before this: none was
            raise ValueError("@rolloutFile: not read (give the template inline, or read the pipeline with its "
                             "files: rollout pipeline start -f)")
        if self.fail_fast and self.max_failures:
            raise ValueError("@maxFailures: tolerating failures needs failFast: false")
        if self.approve == "wave" and self.gate.approval is None:
            raise ValueError("@approve: wave approvals need gate.approval (the policy each wave asks)")
        keys = [t.key for w in self.waves for t in w.targets]
        if len(keys) > MAX_TARGETS:
            raise ValueError(f"@waves: {len(keys)} targets, at most {MAX_TARGETS} in a stage")
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ValueError(f"@waves: target {twice[0]} is listed twice")
        if from_document(info) and self.max_failures >= len(keys):
            raise ValueError(f"@maxFailures: {self.max_failures} tolerated of {len(keys)} targets: the stage would "
                             "count as done with every target failed")
        return self

    @property
    def targets(self) -> list[Target]:
        return [t for w in self.waves for t in w.targets]

    def template(self, as_document: bool = False) -> Rollout:
        """The inline template as a Rollout (a file must have been read into `rollout` by then); under the
        rules of documents read now only when the pipeline is such a document (models/documents.py)."""
        assert self.rollout is not None, f"stage {self.name}: rolloutFile not read"
        return parse_rollout(self.rollout, f"stage {self.name}", as_document)

    def rollout_for(self, target: Target, image: str, pipeline: str | None) -> Rollout:
        """The Rollout this stage runs on one target: the template with the bundle's image and the target's
        context, namespace and the stage's overrides; named after the pipeline (`pipeline`, its workflow ID),
        stage and target (`target_name`) — or, for runs recorded before (`None`), the template's name."""
        rollout = self.template()
        where = placed(rollout.spec.target, target, self.overrides.namespace, self.overrides.deployment)
        spec = rollout.spec.model_copy(update={"image": image, "target": where})
        # every analysis may select the new revision by what was pinned: args pinnedImage and pinnedDigest
        # (used by a template that declares them; a stage override of the same name wins)
        pinned = [Arg(name="pinnedImage", value=image), Arg(name="pinnedDigest", value=image.partition("@")[2])]
        spec = _with_args(spec, [a for a in pinned if a.name not in {o.name for o in self.overrides.args}]
                          + list(self.overrides.args))
        name = child_name(rollout.metadata.name, self.name, target.key) if pipeline is None else \
            target_name(pipeline, self.name, target.key)
        return rollout.model_copy(update={"spec": spec, "metadata": rollout.metadata.model_copy(update={"name": name})})


def target_name(pipeline: str, stage: str, target: str) -> str:
    """A DNS label naming one target's rollout (its workflow is `rollout/<template's environment>/<this>`,
    like any rollout's: `rollout status` / `approve` / `abort` work on it directly): the pipeline's name,
    the stage and the target, readable, then 8 hex digits of a hash of the pipeline's workflow ID
    (environment and name), the stage and the target exactly as written — so no two pipelines, stages or
    targets share one (`web`+`prod-eu` and `web-prod`+`eu`, `prod_eu` and `prod-eu`, a pipeline of the same
    name in another environment)."""
    readable = re.sub(r"[^a-z0-9-]+", "-", f"{pipeline.rsplit('/', 1)[-1]}-{stage}-{target}".lower()).strip("-")
    digest = hashlib.sha256("\0".join((pipeline, stage, target)).encode()).hexdigest()[:8]
    return f"{readable[:54].rstrip('-')}-{digest}"


def child_name(template: str, stage: str, target: str) -> str:
    """How runs recorded before `target_name` named a target's rollout: the template's name, the stage and the
    target (two pipelines sharing a template shared these)."""
    raw = re.sub(r"[^a-z0-9-]+", "-", f"{template}-{stage}-{target}".lower()).strip("-")
    if len(raw) <= 63:
        return raw
    return f"{raw[:54].rstrip('-')}-{hashlib.sha256(raw.encode()).hexdigest()[:8]}"


def _with_args(spec: Any, args: list[Arg]) -> Any:
    """Every analysis step of the template with `args` set (an override replaces an arg of the same name)."""
    names = {a.name for a in args}

    def merged(step: AnalysisStep) -> AnalysisStep:
        return step.model_copy(update={"args": [a for a in step.args if a.name not in names] + list(args)})

    st = spec.strategy
    if st.canary:
        canary = st.canary.model_copy(update={
            "analysis": merged(st.canary.analysis) if st.canary.analysis else None,
            "steps": [s.model_copy(update={"analysis": merged(s.analysis)}) if s.analysis else s for s in st.canary.steps]})
        st = st.model_copy(update={"canary": canary})
    if st.rolling_update and st.rolling_update.analysis:
        st = st.model_copy(update={"rolling_update": st.rolling_update.model_copy(
            update={"analysis": merged(st.rolling_update.analysis)})})
    if st.blue_green and (st.blue_green.pre_promotion_analysis or st.blue_green.post_promotion_analysis):
        bg = st.blue_green
        st = st.model_copy(update={"blue_green": bg.model_copy(update={
            "pre_promotion_analysis": merged(bg.pre_promotion_analysis) if bg.pre_promotion_analysis else None,
            "post_promotion_analysis": merged(bg.post_promotion_analysis) if bg.post_promotion_analysis else None})})
    return spec.model_copy(update={"strategy": st})


class PipelineSpecBody(SpecModel):
    bundle: Bundle
    stages: list[Stage] = Field(min_length=1, max_length=MAX_STAGES)
    concurrency_policy: Literal["reject", "supersede"] = Field(
        "reject", description="a start with another bundle while this pipeline runs: refuse, or abort it first")
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec, description="templates the gates name")
    notifications: list[NotificationChannel] = Field(default_factory=list, max_length=10)

    # what the control plane reads of every document (models/plan.py): a pipeline's approvals and
    # windows are its gates', asked by the pipeline itself
    approval: ClassVar[None] = None
    execution_windows: ClassVar[None] = None
    rollback_window: ClassVar[None] = None

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> PipelineSpecBody:
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError("@stages: two stages have the same name")
        for index, stage in enumerate(self.stages):
            if stage.image is None and len(self.bundle.images) > 1:
                raise ValueError(f"@stages[{index}].image: the bundle has {len(self.bundle.images)} images: name one")
            if stage.image is not None and stage.image not in self.bundle.images:
                raise ValueError(f"@stages[{index}].image: {stage.image!r} is not in bundle.images")
            if index == 0 and stage.gate.soak:
                raise ValueError("@stages[0].gate.soak: the first stage has no stage before it to soak in")
            if stage.rollout is not None:
                try:
                    template = stage.template(from_document(info))
                except SpecError as error:
                    raise ValueError(f"@stages[{index}].rollout: {error.problems[0]}") from None
                for w, wave in enumerate(stage.waves):
                    for t, target in enumerate(wave.targets):
                        try:
                            placed(template.spec.target, target)
                        except ValueError as error:
                            raise ValueError(f"@stages[{index}].waves[{w}].targets[{t}]: {error}") from None
                kind, k8s = template.spec.target.kind, template.spec.target.kubernetes
                if k8s is not None and k8s.in_place is not None and stage.overrides.deployment:
                    raise ValueError(f"@stages[{index}].overrides.deployment: the template rolls {k8s.in_place.kind} "
                                     f"{k8s.workload}, not a Deployment")
                if k8s is not None and k8s.in_place is not None and stage.on_failure == "rollbackCompleted":
                    raise ValueError(f"@stages[{index}].onFailure: rollbackCompleted undoes a target in place; a "
                                     f"{k8s.in_place.kind} is rolled only as a canary (use stop)")
                if kind != "kubernetes" and (stage.overrides.namespace or stage.overrides.deployment):
                    raise ValueError(f"@stages[{index}].overrides: namespace and deployment are Kubernetes'; a {kind} "
                                     f"target changes its {kind} block")
                roles = HASH_ROLES.get(template.spec.strategy.name, ())
                for a, arg in enumerate(stage.overrides.args):
                    role = arg.value_from.role if arg.value_from else None
                    if role is not None and role not in roles and from_document(info):
                        raise ValueError(f"@stages[{index}].overrides.args[{a}].valueFrom: {template.spec.strategy.name} "
                                         f"has no {role} pods to read a template hash of")
            if stage.gate.analysis is not None:
                known = {t.name for t in self.analysis.templates}
                for ref in stage.gate.analysis.templates:
                    if ref.template_name not in known:
                        raise ValueError(f"@stages[{index}].gate.analysis: no template {ref.template_name!r} in "
                                         "spec.analysis.templates")
                try:  # a gate runs before its stage's rollouts: no pods' template hash to read
                    resolve(self.analysis.templates, stage.gate.analysis)
                except ValueError as error:
                    if from_document(info):
                        raise ValueError(f"@stages[{index}].gate.analysis: {error}") from None
        return self

    def image_of(self, stage: Stage) -> str:
        return stage.image or next(iter(self.bundle.images))

    def approvals(self) -> list[tuple[str, ApprovalPolicy]]:
        return [(f"stages[{i}].gate.approval", s.gate.approval) for i, s in enumerate(self.stages)
                if s.gate.approval is not None]

    def plan(self) -> list[tuple[str, int, int]]:
        """The steps, in order: ("gate", stage, 0) before a stage with a gate, ("wave", stage, wave)."""
        steps: list[tuple[str, int, int]] = []
        for index, stage in enumerate(self.stages):
            if not stage.gate.empty():
                steps.append(("gate", index, 0))
            steps += [("wave", index, w) for w in range(len(stage.waves))]
        return steps

    def step_descriptions(self) -> list[str]:
        lines = []
        for kind, s, w in self.plan():
            stage = self.stages[s]
            if kind == "gate":
                lines.append(f"{stage.name}: gate ({stage.gate.describe()})")
            else:
                wave = stage.waves[w]
                where = ", ".join((t.context or t.key) + (f" ({t.region})" if t.region else "") for t in wave.targets[:6])
                more = f" +{len(wave.targets) - 6}" if len(wave.targets) > 6 else ""
                lines.append(f"{stage.name}: wave {w + 1}/{len(stage.waves)} ({where}{more}; "
                             f"rounds of {wave.max_parallel})")
        return lines


class Pipeline(SpecModel):
    api_version: Literal["rollouts.durable.dev/v1alpha1"]
    kind: Literal["Pipeline"]
    metadata: Metadata
    spec: PipelineSpecBody

    @property
    def rollout_id(self) -> str:
        return pipeline_id(self.metadata.environment, self.metadata.name)

    @property
    def strategy_name(self) -> str:
        return "pipeline"

    @property
    def target_description(self) -> str:
        count = sum(len(s.targets) for s in self.spec.stages)
        return f"{' → '.join(s.name for s in self.spec.stages)} ({count} targets)"

    @property
    def version(self) -> str:
        return ", ".join(self.spec.bundle.images.values())

    def digest(self) -> str:
        """The bundle as declared with its stages: a retried CI job sends the same and attaches."""
        return hashlib.sha256(self.model_dump_json(by_alias=True).encode()).hexdigest()[:16]


def parse_pipeline(document: Any, source: str = "<spec>") -> Pipeline:
    return parse_as(Pipeline, document, source, "Pipeline")


def json_schema() -> dict[str, Any]:
    return schema_of(Pipeline, "pipeline", "durable-rollouts Pipeline")


# ---- wire ---------------------------------------------------------------------------------------------


class PipelineInput(StartedBy):
    """`PipelineRun`'s input: the Pipeline and who asked (models/starter.py)."""

    pipeline: Pipeline
    action: Literal["pipeline"] = "pipeline"
    resolved: dict[str, str] = Field(default_factory=dict, description="set by the workflow: name -> pinned image")

    @property
    def document(self) -> Pipeline:
        return self.pipeline


class BundleInput(Message):
    images: dict[str, str]


class ResolvedBundle(Message):
    images: dict[str, str] = Field(description="name -> repository:tag@sha256:… (the digest is what deploys)")
