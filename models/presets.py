"""Analysis templates shipped with the engine, for the seed thresholds; a spec names them like its own
(`templateName: error-rate`) and a template of its own with the same name wins.

Args: `namespace` and `version` (the label values of the version under test), and the metric names,
which default to the local traffic simulator's (`sim_requests_total`, `sim_request_duration_seconds`)
and to cAdvisor's for CPU and memory; point them at your own (`http_requests_total`, ...) with args.
"""

from __future__ import annotations

from models.analysis import AnalysisStep, AnalysisTemplate

_SCOPE = 'namespace="{{args.namespace}}",version="{{args.version}}"'
_RATE = "sum(rate({{args.requests}}{%s%s}[{{args.window}}]))"
_COMMON = [
    {"name": "namespace"}, {"name": "version"},
    {"name": "requests", "value": "sim_requests_total"}, {"name": "window", "value": "30s"},
]
_PODS = 'namespace="{{args.namespace}}",pod=~"{{args.pods}}",container!=""'

PRESETS = [
    {   # seed 002
        "name": "success-rate", "args": _COMMON,
        "metrics": [{"name": "success-rate", "interval": "30s", "count": 4, "initialDelay": "30s",
                     "successCondition": "result[0] >= 0.95",
                     "provider": {"prometheus": {"query": "(" + _RATE % (_SCOPE, ',code!~"5.."') + " or vector(0)) / "
                                                 + _RATE % (_SCOPE, "")}}}],
    },
    {   # seed 002
        "name": "error-rate", "args": _COMMON,
        "metrics": [{"name": "error-rate", "interval": "30s", "count": 4, "initialDelay": "30s",
                     "successCondition": "result[0] <= 0.05",
                     "provider": {"prometheus": {"query": "(" + _RATE % (_SCOPE, ',code=~"5.."') + " or vector(0)) / "
                                                 + _RATE % (_SCOPE, "")}}}],
    },
    {
        "name": "latency-p95",
        "args": [*_COMMON[:2], {"name": "duration", "value": "sim_request_duration_seconds"},
                 {"name": "window", "value": "30s"}, {"name": "seconds", "value": "0.5"}],
        "metrics": [{"name": "latency-p95", "interval": "30s", "count": 4, "initialDelay": "30s",
                     "successCondition": "result[0] <= {{args.seconds}}",
                     "provider": {"prometheus": {"query": "histogram_quantile(0.95, sum by (le) (rate("
                                                 "{{args.duration}}_bucket{%s}[{{args.window}}])))" % _SCOPE}}}],
    },
    {   # seed 004: error rate above 5% for 2 minutes, or response time above 3 s for 1 minute, rolls back
        "name": "sustained-errors-or-latency",
        "args": [*_COMMON[:3], {"name": "duration", "value": "sim_request_duration_seconds"}],
        "metrics": [
            {"name": "errors-for-2m", "interval": "15s", "count": 40, "failureCondition": "result[0] > 0.05",
             "provider": {"prometheus": {"empty_result": "inconclusive", "query":
                 "min_over_time(((sum(rate({{args.requests}}{%s,code=~\"5..\"}[30s])) or vector(0)) / "
                 "sum(rate({{args.requests}}{%s}[30s])))[2m:15s])" % (_SCOPE, _SCOPE)}}},
            {"name": "slow-for-1m", "interval": "15s", "count": 40, "failureCondition": "result[0] > 3",
             "provider": {"prometheus": {"query":
                 "min_over_time(histogram_quantile(0.95, sum by (le) (rate({{args.duration}}_bucket{%s}[30s])))"
                 "[1m:15s])" % _SCOPE}}},
        ],
    },
    {
        "name": "cpu",
        "args": [{"name": "namespace"}, {"name": "pods"}, {"name": "cores", "value": "0.8"}],
        "metrics": [{"name": "cpu", "interval": "30s", "count": 4, "successCondition": "result[0] <= {{args.cores}}",
                     "provider": {"prometheus": {"query": "max(sum by (pod) (rate(container_cpu_usage_seconds_total"
                                                 "{%s}[1m])))" % _PODS}}}],
    },
    {
        "name": "memory",
        "args": [{"name": "namespace"}, {"name": "pods"}, {"name": "bytes", "value": "536870912"}],
        "metrics": [{"name": "memory", "interval": "30s", "count": 4, "successCondition": "result[0] <= {{args.bytes}}",
                     "provider": {"prometheus": {"query": "max(sum by (pod) (container_memory_working_set_bytes"
                                                 "{%s}))" % _PODS}}}],
    },
]


_PRESET_TEMPLATES = {p["name"]: AnalysisTemplate.model_validate(p) for p in PRESETS}


def preset_templates() -> dict[str, AnalysisTemplate]:
    return dict(_PRESET_TEMPLATES)


HASH_ROLES = {"canary": ("Latest", "Stable"), "blueGreen": ("Latest", "Stable"), "rollingUpdate": ("Latest",)}  # the pods whose template hash a strategy's analysis args may read


def resolve(templates: list[AnalysisTemplate], step: AnalysisStep,
            hashes: dict[str, str] | None = None) -> list[tuple[AnalysisTemplate, dict[str, str]]]:
    """The step's templates with their args filled (step args over template defaults; a valueFrom arg from
    `hashes`, role -> pod-template-hash); ValueError names a missing template or arg."""
    by_name = preset_templates() | {t.name: t for t in templates}
    given = {a.name: a.value for a in step.args if a.value is not None}
    for arg in step.args:
        if arg.value_from is not None:
            role = arg.value_from.role
            if role not in (hashes or {}):
                what = "pods" if arg.value_from.kind == "podTemplateHashValue" else "side"
                raise ValueError(f"arg {arg.name!r}: valueFrom.{arg.value_from.kind} {role}: no such {what} here (a "
                                 "canary's or blue-green's analysis has Latest and Stable, a rolling update's Latest)")
            given[arg.name] = (hashes or {})[role]
    resolved = []
    for ref in step.templates:
        template = by_name.get(ref.template_name)
        if template is None:
            raise ValueError(f"no analysis template {ref.template_name!r} in spec.analysis.templates")
        values = {a.name: a.value for a in template.args if a.value is not None} | given
        missing = [a.name for a in template.args if a.name not in values]
        if missing:
            raise ValueError(f"template {template.name}: arg {missing[0]!r} has no value")
        resolved.append((template, {k: v for k, v in values.items() if k in {a.name for a in template.args}}))
    return resolved
