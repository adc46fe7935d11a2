"""The statistical judge on known samples: identical, clearly worse, clearly better, noisy; the score
with weights and a critical metric; a spec that asks the judge for a metric without {{version}}."""

from __future__ import annotations

import random

import pytest

from activities.analysis import outcome as judge_outcome
from activities.analysis.judge import compare, score
from models.analysis import JudgeMetric, Metric

rng = random.Random(42)
LATENCY = JudgeMetric(name="latency", query='q{v="{{version}}"}', direction="increase", tolerance=0.1)
ERRORS = JudgeMetric(name="errors", query='e{v="{{version}}"}', direction="increase", tolerance=0.2, critical=True)
THROUGHPUT = JudgeMetric(name="throughput", query='t{v="{{version}}"}', direction="decrease", tolerance=0.1)


def sample(mean: float, spread: float, n: int = 40) -> list[float]:
    return [rng.gauss(mean, spread) for _ in range(n)]


def test_identical_samples_pass():
    same = sample(100, 5)
    assert compare(LATENCY, same, list(same)).outcome == "Pass"
    assert compare(LATENCY, [0.0] * 10, [0.0] * 10).outcome == "Pass"


def test_clearly_worse_is_high():
    verdict = compare(LATENCY, sample(100, 5), sample(150, 5))
    assert verdict.outcome == "High" and verdict.p_value < 1e-6 and 0.4 < verdict.change < 0.6


def test_clearly_better_passes_when_only_an_increase_is_bad():
    assert compare(LATENCY, sample(100, 5), sample(60, 5)).outcome == "Pass"
    assert compare(THROUGHPUT, sample(100, 5), sample(60, 5)).outcome == "Low", "less throughput is bad"


def test_noisy_samples_with_a_small_difference_pass():
    assert compare(LATENCY, sample(100, 40), sample(104, 40)).outcome == "Pass"


def test_significant_but_within_tolerance_passes():
    verdict = compare(LATENCY, sample(100, 1, 200), sample(105, 1, 200))
    assert verdict.p_value < 0.05 and verdict.outcome == "Pass", "5% is within the 10% tolerance"


def test_too_few_samples_is_no_data():
    assert compare(LATENCY, [1.0, 2.0], sample(1, 1)).outcome == "NoData"


def test_score_weights_and_critical_metrics():
    good = compare(LATENCY, sample(100, 5), sample(100, 5))
    bad_throughput = compare(THROUGHPUT, sample(100, 5), sample(50, 5))
    assert score([LATENCY, THROUGHPUT], [good, bad_throughput]) == pytest.approx(50.0)
    heavy = LATENCY.model_copy(update={"weight": 3.0})
    assert score([heavy, THROUGHPUT], [good, bad_throughput]) == pytest.approx(75.0)
    bad_errors = compare(ERRORS, sample(0.01, 0.002), sample(0.05, 0.005))
    assert score([LATENCY, ERRORS], [good, bad_errors]) == 0.0, "a critical metric fails the whole judgement"


def test_score_to_outcome_with_pass_and_marginal_thresholds():
    metric = Metric.model_validate({
        "name": "judge", "successCondition": "result >= 90", "failureCondition": "result < 75",
        "provider": {"judge": {"baselineVersion": "1.0.0", "canaryVersion": "2.0.0",
                               "metrics": [LATENCY.model_dump(by_alias=True)]}}})
    assert [judge_outcome(metric, s) for s in (100.0, 80.0, 50.0)] == ["Successful", "Inconclusive", "Failed"]


def test_a_judge_metric_must_name_the_version():
    with pytest.raises(ValueError, match="must use {{version}}"):
        JudgeMetric(name="x", query="up")
