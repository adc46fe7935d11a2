"""The statistical judge (Kayenta's idea): for each metric, the baseline's and the canary's samples over
the same window (Prometheus range queries), a two-sided Mann-Whitney U test (SciPy), and the relative
change of the median; a metric is bad when the difference is significant, larger than its tolerance,
and in its bad direction. Score = the weight share of good metrics (0 when a critical one is bad);
the metric's conditions turn the score into Successful / Inconclusive (marginal) / Failed."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from statistics import median
from typing import Any

from prometheus_api_client import PrometheusApiClientException
from requests.exceptions import RequestException
from scipy.stats import mannwhitneyu
from temporalio.exceptions import ApplicationError

from activities.analysis import EmptyResult
from activities.analysis.prometheus import PrometheusClients
from models.analysis import JudgeMetric, Metric, fill


@dataclass(frozen=True)
class Verdict:
    metric: str
    outcome: str  # Pass | High | Low | NoData
    p_value: float
    change: float  # relative change of the median, canary vs baseline

    @property
    def bad(self) -> bool:
        return self.outcome in ("High", "Low")

    def describe(self) -> str:
        if self.outcome == "NoData":
            return f"{self.metric} NoData"
        return f"{self.metric} {self.outcome} (p={self.p_value:.3g}, {self.change:+.0%})"


def compare(metric: JudgeMetric, baseline: list[float], canary: list[float], significance: float = 0.05) -> Verdict:
    """The verdict for one metric from its two samples."""
    baseline = [v for v in baseline if not math.isnan(v)]
    canary = [v for v in canary if not math.isnan(v)]
    if len(baseline) < 3 or len(canary) < 3:
        return Verdict(metric.name, "NoData", math.nan, math.nan)
    base, can = median(baseline), median(canary)
    change = (can - base) / abs(base) if base else (0.0 if can == base else math.copysign(math.inf, can - base))
    if set(baseline) == set(canary) and len(set(baseline)) == 1:
        p_value = 1.0  # identical constants: nothing to test
    else:
        p_value = float(mannwhitneyu(canary, baseline, alternative="two-sided").pvalue)
    outcome = "Pass"
    if p_value < significance and abs(change) > metric.tolerance:
        worse = (change > 0 and metric.direction in ("increase", "either")) or (
            change < 0 and metric.direction in ("decrease", "either"))
        if worse:
            outcome = "High" if change > 0 else "Low"
    return Verdict(metric.name, outcome, p_value, change)


def score(metrics: list[JudgeMetric], verdicts: list[Verdict]) -> float:
    """0..100: the weight share of metrics that are not bad; 0 if a critical metric is bad."""
    by_name = {m.name: m for m in metrics}
    if any(v.bad and by_name[v.metric].critical for v in verdicts):
        return 0.0
    judged = [v for v in verdicts if v.outcome != "NoData"]
    total = sum(by_name[v.metric].weight for v in judged)
    return 100.0 * sum(by_name[v.metric].weight for v in judged if not v.bad) / total if total else math.nan


class JudgeProvider:
    def __init__(self, prometheus: PrometheusClients):
        self.clients = prometheus

    def measure(self, metric: Metric, args: dict[str, str]) -> tuple[Any, str]:
        judge = metric.provider.judge
        address = self.clients.address(metric, judge.address)
        prometheus = self.clients.connect(address)
        end = datetime.fromtimestamp(time.time(), tz=UTC)
        start = datetime.fromtimestamp(end.timestamp() - judge.lookback.total_seconds(), tz=UTC)
        step = f"{max(1, int(judge.step.total_seconds()))}s"
        verdicts = []
        for m in judge.metrics:
            samples = []
            for version in (fill(judge.baseline_version, args), fill(judge.canary_version, args)):
                query = fill(m.query, args).replace("{{version}}", version).replace("{{ version }}", version)
                try:
                    answer = prometheus.custom_query_range(query, start_time=start, end_time=end, step=step)
                except PrometheusApiClientException as error:
                    raise ApplicationError(f"metric {metric.name}/{m.name}: Prometheus rejected the query: {error}",
                                           type="Invalid", non_retryable=True) from None
                except RequestException as error:
                    raise ApplicationError(f"metric {metric.name}: Prometheus {address} unreachable: "
                                           f"{type(error).__name__}", type="Unavailable") from None
                samples.append([float(v) for series in answer[:1] for _, v in series.get("values", [])])
            verdicts.append(compare(m, samples[0], samples[1], judge.significance))
        result = score(judge.metrics, verdicts)
        described = "judge: " + "; ".join(v.describe() for v in verdicts)
        if math.isnan(result):
            raise EmptyResult("no metric had data on both sides", described)
        return round(result, 2), described
