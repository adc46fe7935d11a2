"""Analysis providers: where a metric's value comes from. One module per provider, behind one Protocol;
`measure` takes one measurement and judges it against the metric's conditions.

A measurement is one activity: a crash between measurements loses nothing (the workflow holds the
counts) and a retried measurement is simply taken again (reading a metric changes nothing).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Protocol

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from models.analysis import MeasureInput, Measurement, Metric, with_args
from models.conditions import ConditionError, evaluate


class EmptyResult(Exception):
    """The provider answered with nothing to judge (an empty vector, NaN)."""


class MetricProvider(Protocol):
    def measure(self, metric: Metric, args: dict[str, str]) -> tuple[Any, str]:
        """(result, the query as sent); raise EmptyResult for no data, ApplicationError for bad input
        (non-retryable) or an unreachable provider (retryable)."""
        ...


def default_providers(prometheus_url: str | None = None) -> dict[str, MetricProvider]:
    """Every provider with its client: one Prometheus client per address (the worker's PROMETHEUS_URL
    for metrics that name none) and one HTTP client, shared by all measurements of the worker."""
    from activities.analysis.cloudwatch import CloudWatchSource
    from activities.analysis.intune import IntuneInstallsSource
    from activities.analysis.judge import JudgeProvider
    from activities.analysis.playvitals import PlayVitalsSource
    from activities.analysis.prometheus import PrometheusClients, PrometheusProvider
    from activities.analysis.web import WebProvider
    from activities.aws import AwsClients

    prometheus = PrometheusClients(os.environ.get("PROMETHEUS_URL", "") if prometheus_url is None else prometheus_url)
    return {"prometheus": PrometheusProvider(prometheus), "web": WebProvider(httpx.Client()),
            "judge": JudgeProvider(prometheus), "playVitals": PlayVitalsSource(),
            "intuneInstalls": IntuneInstallsSource(), "cloudWatch": (cloudwatch := CloudWatchSource(AwsClients())),
            "cloudWatchAlarms": cloudwatch}


def outcome(metric: Metric, result: Any) -> str:
    """Argo's rules: failure first; success alone decides; both given and neither met: Inconclusive."""
    if metric.failure_condition is not None and evaluate(metric.failure_condition, result):
        return "Failed"
    if metric.success_condition is not None:
        if evaluate(metric.success_condition, result):
            return "Successful"
        return "Inconclusive" if metric.failure_condition is not None else "Failed"
    return "Successful"


def _shown(result: Any) -> str:
    clean = [None if isinstance(v, float) and math.isnan(v) else v for v in result] if isinstance(result, list) else result
    return json.dumps(clean)


class AnalysisActivities:
    def __init__(self, providers: dict[str, MetricProvider] | None = None):
        """`providers` by name (`default_providers()` when not given); the loop never knows which runs."""
        self._providers = providers if providers is not None else default_providers()

    @activity.defn(name="measure")
    def measure(self, request: MeasureInput) -> Measurement:
        metric = with_args(request.metric, request.args)
        provider = self._providers[metric.provider.name]
        try:
            # a slow provider is fine: the worker heartbeats for the activity (workers/heartbeat.py)
            result, query = provider.measure(metric, request.args)
        except EmptyResult as empty:
            p = metric.provider
            policy = p.prometheus.empty_result if p.prometheus else "error" if p.web else "inconclusive"
            phase = {"inconclusive": "Inconclusive", "failed": "Failed", "error": "Error"}[policy]
            message, query = (list(empty.args) + ["", ""])[:2]
            return Measurement(phase=phase, message=f"no data: {message}", query=query)
        except ApplicationError as error:
            if error.non_retryable:
                raise
            return Measurement(phase="Error", message=error.message)
        try:
            phase = outcome(metric, result)
        except ConditionError as error:
            return Measurement(phase="Error", value=_shown(result), message=str(error), query=query)
        return Measurement(phase=phase, value=_shown(result), query=query)
