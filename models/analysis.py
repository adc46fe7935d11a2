"""Analysis in the spec (Argo's AnalysisTemplate fields and meaning) and its wire models.

Templates live in `spec.analysis.templates`; a canary `analysis` step names templates and gives args.
A query is templated with `{{args.NAME}}`; conditions are safe expressions over `result`
(`models.conditions`), checked when the spec is validated.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from models.conditions import ConditionError, parse
from models.durations import Duration
from models.specbase import DnsLabel, Message, OneOf, SpecModel

ARG = re.compile(r"\{\{\s*args\.([A-Za-z0-9_-]+)\s*\}\}")


class ArgValueFrom(OneOf):
    """Which side of the rollout an arg names, read when the analysis starts, so a query selects one
    revision's instances: `Latest` the new version (the canary, the preview, a rolling update's current
    revision), `Stable` the one it replaces. Kubernetes: Argo Rollouts' `podTemplateHashValue`, the pods'
    `pod-template-hash` label. ECS: `targetGroupValue`, that side's target group as CloudWatch's
    `TargetGroup` dimension names it (`targetgroup/<name>/<id>`). Which one a target offers is checked with
    the whole spec (models/capabilities.py)."""

    CHOICES: ClassVar[tuple[str, ...]] = ("podTemplateHashValue", "targetGroupValue")
    WHAT: ClassVar[str] = "valueFrom"

    pod_template_hash_value: Literal["Latest", "Stable"] | None = None
    target_group_value: Literal["Latest", "Stable"] | None = None

    @property
    def role(self) -> str:
        return self.chosen_value

    @property
    def kind(self) -> str:
        return self.chosen_key


class Arg(SpecModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    value: str | None = None
    value_from: ArgValueFrom | None = None

    @model_validator(mode="after")
    def _one_value(self) -> Arg:
        if self.value is not None and self.value_from is not None:
            raise ValueError("@valueFrom: an arg has a value or a valueFrom, not both")
        return self


class PrometheusProvider(SpecModel):
    address: str | None = Field(None, description="Prometheus base URL (default: the worker's PROMETHEUS_URL)")
    query: str = Field(min_length=1)
    empty_result: Literal["inconclusive", "failed", "error"] = Field(
        "inconclusive", description="what an empty vector or a NaN value counts as"
    )

    def texts(self) -> list[str]:
        """What `{{args.NAME}}` may appear in."""
        return [self.query]


class WebProvider(SpecModel):
    url: str = Field(pattern=r"^https?://")
    method: Literal["GET", "POST"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    json_path: str = Field("", description="dotted path into the JSON answer, e.g. data.ok; empty: the whole answer")
    timeout_seconds: float = Field(10, gt=0, le=60)

    def texts(self) -> list[str]:
        return [self.url, self.body or "", *self.headers.values()]


class JudgeMetric(SpecModel):
    """One metric the judge compares; `query` uses `{{version}}` for the side it is asked for."""

    name: DnsLabel
    query: str = Field(min_length=1)
    direction: Literal["increase", "decrease", "either"] = Field("increase", description="which change is bad")
    tolerance: float = Field(0.1, ge=0, description="relative change of the median still accepted (0.1 = 10%)")
    critical: bool = Field(False, description="a bad verdict fails the whole judgement")
    weight: float = Field(1.0, gt=0)

    @field_validator("query")
    @classmethod
    def _names_version(cls, query: str) -> str:
        if "{{version}}" not in query.replace(" ", ""):
            raise ValueError("must use {{version}} (the judge runs it for the baseline and for the canary)")
        return query


class JudgeProvider(SpecModel):
    """Kayenta-style: baseline and canary over the same window (range queries), a Mann-Whitney U test
    per metric; the result is a score 0..100 (critical failures: 0) for the metric's conditions."""

    address: str | None = None
    lookback: Duration = Field(default_factory=lambda: timedelta(minutes=2))
    step: Duration = Field(default_factory=lambda: timedelta(seconds=5))
    baseline_version: str
    canary_version: str
    significance: float = Field(0.05, gt=0, lt=1, description="p-value below which a difference is real")
    metrics: list[JudgeMetric] = Field(min_length=1, max_length=50)

    def texts(self) -> list[str]:
        return [self.baseline_version, self.canary_version, *(m.query for m in self.metrics)]


class PlayVitalsProvider(SpecModel):
    """Google Play's vitals for one version code beside a baseline, from the Play Developer Reporting
    API (`vitals.crashrate` / `vitals.anrrate` `query`, daily, by `versionCode`). The result is
    `{"release": rate, "baseline": rate}` as Play reports them (users weighted); the baseline is one version code, or
    without one every other version code's users together."""

    package_name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$")
    metric: Literal["crashRate", "userPerceivedCrashRate", "anrRate", "userPerceivedAnrRate"] = "crashRate"
    version_code: str = Field(min_length=1, description="the release's version code, e.g. {{args.versionCode}}")
    baseline_version_code: str | None = Field(None, min_length=1)
    days: int = Field(1, ge=1, le=28, description="the Los Angeles days the rates cover, ending with the latest day Play has computed")

    def texts(self) -> list[str]:
        return [self.version_code, self.baseline_version_code or ""]


class IntuneInstallsProvider(SpecModel):
    """An Intune app's install outcomes from the reports export (`DeviceInstallStatusByApp`): the result
    is `{"installed": n, "failed": n, "pending": n, "successRate": percent of installed over installed
    and failed}` across the devices the app is assigned to."""

    app_id: str = Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
    minimum_reports: int = Field(1, ge=1, description="fewer installed or failed devices: no data yet")

    def texts(self) -> list[str]:
        return [self.app_id]


class KubernetesProvider(SpecModel):
    """A cluster's health: `{"reachable": bool, "nodes": n, "ready": n, "notReady": [names]}`, e.g.
    `successCondition: result['reachable'] and result['nodes'] > 0 and result['ready'] == result['nodes']`."""

    context: str = Field(min_length=1, max_length=253, description="kubeconfig context of the cluster")

    def texts(self) -> list[str]:
        return [self.context]


class CloudWatchDimension(SpecModel):
    name: str = Field(min_length=1, max_length=255)
    value: str = Field(min_length=1, max_length=1024)


class CloudWatchMetric(SpecModel):
    namespace: str = Field(min_length=1, max_length=255)
    metric_name: str = Field(min_length=1, max_length=255)
    dimensions: list[CloudWatchDimension] = Field(default_factory=list, max_length=30)


class CloudWatchMetricStat(SpecModel):
    metric: CloudWatchMetric
    period: int = Field(60, ge=1, description="seconds: 1, 5, 10, 20, 30 or a multiple of 60 (GetMetricData)")
    stat: str = Field("Sum", min_length=1, max_length=50, description="Sum, Average, Minimum, Maximum, SampleCount, p99…")
    unit: str | None = None

    @field_validator("period")
    @classmethod
    def _period(cls, period: int) -> int:
        if period not in (1, 5, 10, 20, 30) and period % 60:
            raise ValueError(f"{period}: 1, 5, 10, 20, 30 or a multiple of 60")
        return period


LAMBDA = re.compile(r"\bLAMBDA\s*\(", re.I)  # metric math's Lambda data source: it invokes a function


class CloudWatchQuery(SpecModel):
    """One of GetMetricData's MetricDataQueries (Argo Rollouts' `metricDataQueries`, camelCase): a metric
    (`metricStat`) or metric math over the others' ids (`expression`)."""

    id: str = Field(pattern=r"^[a-z][A-Za-z0-9_]{0,254}$")
    metric_stat: CloudWatchMetricStat | None = None
    expression: str | None = Field(None, min_length=1, max_length=2048,
                                   description="metric math over the other queries' ids (no LAMBDA)")
    label: str | None = None
    return_data: bool = True

    @model_validator(mode="after")
    def _one(self) -> CloudWatchQuery:
        if (self.metric_stat is None) == (self.expression is None):
            raise ValueError("a query has exactly one of metricStat, expression")
        if self.expression is not None and LAMBDA.search(self.expression):
            raise ValueError("@expression: no LAMBDA(): it would run a function with the worker's credentials")
        return self


class CloudWatchProvider(SpecModel):
    """Amazon CloudWatch's GetMetricData over the last `lookback`: the result is `{id: [values, newest
    first]}` for every query that returns data, e.g. `successCondition: result['errors'][0] /
    result['requests'][0] < 0.01`; no values at all is no data (Inconclusive). The region is the spec's; the
    endpoint and credentials are the worker's own."""

    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
    lookback: Duration = Field(default_factory=lambda: timedelta(minutes=5))
    metric_data_queries: list[CloudWatchQuery] = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _ids(self) -> CloudWatchProvider:
        ids = [q.id for q in self.metric_data_queries]
        if len(set(ids)) != len(ids):
            raise ValueError("@metricDataQueries: ids must differ")
        if not any(q.return_data for q in self.metric_data_queries):
            raise ValueError("@metricDataQueries: at least one query returns data")
        return self

    def texts(self) -> list[str]:
        return [*(d.value for q in self.metric_data_queries if q.metric_stat for d in q.metric_stat.metric.dimensions),
                *(q.expression or "" for q in self.metric_data_queries)]


class CloudWatchAlarmsProvider(SpecModel):
    """CloudWatch alarms as a gate, as CodeDeploy's alarm rollback uses them: the result is `{"alarms": {name:
    state}, "inAlarm": [names]}`, e.g. `successCondition: len(result['inAlarm']) == 0`; an alarm that does not
    exist is bad input (a misspelt name must not pass as "not in ALARM")."""

    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
    alarm_names: list[str] = Field(min_length=1, max_length=100)

    def texts(self) -> list[str]:
        return list(self.alarm_names)


class Provider(OneOf):
    CHOICES: ClassVar[tuple[str, ...]] = ("prometheus", "web", "judge", "playVitals", "intuneInstalls", "kubernetes",
                                          "cloudWatch", "cloudWatchAlarms")
    WHAT: ClassVar[str] = "provider"

    prometheus: PrometheusProvider | None = None
    web: WebProvider | None = None
    judge: JudgeProvider | None = None
    play_vitals: PlayVitalsProvider | None = None
    intune_installs: IntuneInstallsProvider | None = None
    kubernetes: KubernetesProvider | None = None
    cloud_watch: CloudWatchProvider | None = None
    cloud_watch_alarms: CloudWatchAlarmsProvider | None = None

    @property
    def name(self) -> str:
        return self.chosen_key


class Metric(SpecModel):
    name: DnsLabel
    provider: Provider
    success_condition: str | None = None
    failure_condition: str | None = None
    interval: Duration | None = Field(None, description="between measurements")
    count: int | None = Field(None, ge=1, le=10000, description="measurements to take (default 1, or unbounded "
                                                                "with an interval inside a background analysis)")
    initial_delay: Duration | None = None
    failure_limit: int = Field(0, ge=0)
    inconclusive_limit: int = Field(0, ge=0)
    consecutive_error_limit: int = Field(4, ge=0)
    consecutive_success_limit: int | None = Field(None, ge=1)
    dry_run: bool = False
    measurement_retention: int = Field(10, ge=1, le=1000)

    @field_validator("success_condition", "failure_condition")
    @classmethod
    def _safe(cls, text: str | None) -> str | None:
        if text is not None:
            try:
                parse(ARG.sub("0", text))  # args are filled in before evaluation
            except ConditionError as error:
                raise ValueError(f"{text!r}: {error}") from None
        return text

    @model_validator(mode="after")
    def _check(self) -> Metric:
        if self.success_condition is None and self.failure_condition is None:
            raise ValueError("@successCondition: a metric needs a successCondition or a failureCondition")
        if (self.count or 1) > 1 and self.interval is None:
            raise ValueError("@interval: needed with count > 1")
        return self

    @property
    def measurements(self) -> int:
        return self.count or 1

    def texts(self) -> list[str]:
        conditions = [c for c in (self.success_condition, self.failure_condition) if c]
        return conditions + self._provider_texts()

    def _provider_texts(self) -> list[str]:
        return self.provider.chosen_value.texts()


class AnalysisTemplate(SpecModel):
    name: DnsLabel
    args: list[Arg] = Field(default_factory=list)
    metrics: list[Metric] = Field(min_length=1, max_length=20)

    @model_validator(mode="after")
    def _args_declared(self) -> AnalysisTemplate:
        for index, arg in enumerate(self.args):
            if arg.value_from is not None:
                raise ValueError(f"@args[{index}].valueFrom: a template's arg has a default value at most; the "
                                 "analysis step's args take valueFrom")
        declared = {a.name for a in self.args}
        for index, metric in enumerate(self.metrics):
            for text in metric.texts():
                for used in ARG.findall(text):
                    if used not in declared:
                        raise ValueError(f"@metrics[{index}]: uses {{{{args.{used}}}}}, not declared in args")
        return self


class TemplateRef(SpecModel):
    template_name: DnsLabel


class AnalysisStep(SpecModel):
    """Run templates now; the step passes, fails (rollback) or is inconclusive (a person decides)."""

    templates: list[TemplateRef] = Field(min_length=1)
    args: list[Arg] = Field(default_factory=list)

    def hash_roles(self) -> list[str]:
        """Which sides the args read (valueFrom: Latest, Stable), in order."""
        return sorted({a.value_from.role for a in self.args if a.value_from is not None})


class BackgroundAnalysis(AnalysisStep):
    """Analysis across the canary's steps: metrics without a `count` measure every `interval` until the
    rollout ends; Failed rolls back at once (mid-step too), Inconclusive pauses at the next step."""

    starting_step: int = Field(0, ge=0)


class AnalysisSpec(SpecModel):
    templates: list[AnalysisTemplate] = Field(default_factory=list)


def fill(text: str, args: dict[str, str]) -> str:
    return ARG.sub(lambda m: args[m.group(1)], text)


def with_args(metric: Metric, args: dict[str, str]) -> Metric:
    """The metric with its conditions' args filled in."""
    return metric.model_copy(update={
        field: fill(getattr(metric, field), args)
        for field in ("success_condition", "failure_condition") if getattr(metric, field)
    })


# ---- wire ---------------------------------------------------------------------------------------------


class MeasureInput(Message):
    rollout_id: str
    template: str
    metric: Metric
    args: dict[str, str]


class Measurement(Message):
    phase: Literal["Successful", "Failed", "Inconclusive", "Error"]
    value: str = Field("", description="the result as measured (JSON), for status and history")
    message: str = ""
    query: str = ""


class MetricResult(Message):
    template: str
    name: str
    phase: Literal["Running", "Successful", "Failed", "Inconclusive", "Error"] = "Running"
    dry_run: bool = False
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    consecutive_successes: int = 0
    message: str = ""
    measurements: list[Measurement] = Field(default_factory=list)


class AnalysisResult(Message):
    phase: Literal["Successful", "Failed", "Inconclusive"]
    metrics: list[MetricResult]
    message: str = ""


ZERO = timedelta(0)
