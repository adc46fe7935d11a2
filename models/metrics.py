"""The deployment metrics: names, labels and the process's registry (prometheus_client). The control
plane sets them as it decides (workflows/metrics.py, never while a workflow replays its history); the
worker serves them with the Temporal SDK's own metrics on one endpoint (workers/metrics.py).

| metric | type | labels |
|---|---|---|
| `rollouts_started_total` | counter | strategy, environment |
| `rollouts_finished_total` | counter | strategy, environment, phase, reason |
| `rollout_duration_seconds` | histogram | strategy, environment, phase |
| `rollbacks_total` | counter | strategy, environment, reason |
| `rollout_step`, `rollout_steps` | gauge, per running rollout | rollout, strategy, environment |
| `rollout_weight_ratio` | gauge, per running rollout (traffic-weighted targets) | rollout, strategy, environment |
| `rollout_paused` | gauge, per running rollout: 1 while paused | rollout, strategy, environment, reason |
| `rollout_approval_wait_seconds` | histogram | environment, outcome (promote, abort, extend) |
| `rollout_analysis_measurements_total` | counter | template, metric, phase |
| `rollout_analysis_runs_total` | counter | phase |

Counters count once per decision in the normal case; a worker killed between deciding and reporting
the decision to the server leaves it to be decided again by another worker, which counts it again (at
least once, like any metric emitted from a workflow)."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)
KIND = ["strategy", "environment"]
RUNNING = ["rollout", "strategy", "environment"]
DURATIONS = (60, 300, 900, 1800, 3600, 2 * 3600, 6 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400, 30 * 86400)

STARTED = Counter("rollouts_started", "Rollouts, releases and pipelines started", KIND, registry=REGISTRY)
FINISHED = Counter("rollouts_finished", "Rollouts finished, by final phase and reason", [*KIND, "phase", "reason"],
                   registry=REGISTRY)
DURATION = Histogram("rollout_duration_seconds", "From start to finish (the workflow's clock)", [*KIND, "phase"],
                     buckets=DURATIONS, registry=REGISTRY)
ROLLBACKS = Counter("rollbacks", "Rollouts that ended rolled back (Degraded after changing the target)",
                    [*KIND, "reason"], registry=REGISTRY)
STEP = Gauge("rollout_step", "The step a running rollout is at (1-based)", RUNNING, registry=REGISTRY)
STEPS = Gauge("rollout_steps", "A running rollout's number of steps", RUNNING, registry=REGISTRY)
WEIGHT = Gauge("rollout_weight_ratio", "The traffic share a running rollout gives the new version (0-1)", RUNNING,
               registry=REGISTRY)
PAUSED = Gauge("rollout_paused", "1 while a running rollout is paused, labelled with what it waits for",
               [*RUNNING, "reason"], registry=REGISTRY)
APPROVAL_WAIT = Histogram("rollout_approval_wait_seconds", "From an approval's request to its decision",
                          ["environment", "outcome"], buckets=DURATIONS, registry=REGISTRY)
MEASUREMENTS = Counter("rollout_analysis_measurements", "Analysis measurements, by outcome",
                       ["template", "metric", "phase"], registry=REGISTRY)
ANALYSES = Counter("rollout_analysis_runs", "Analysis runs (steps and background), by verdict", ["phase"],
                   registry=REGISTRY)
_paused: dict[tuple[str, str, str], str] = {}  # a running rollout's paused reason shown now
_lock = threading.Lock()


def show_running(labels: tuple[str, str, str], step: int, steps: int, weight: float | None, paused: str | None) -> None:
    """A running rollout's gauges (`labels`: rollout, strategy, environment)."""
    with _lock:
        STEP.labels(*labels).set(step)
        STEPS.labels(*labels).set(steps)
        if weight is not None:
            WEIGHT.labels(*labels).set(weight)
        if _paused.get(labels) != paused:
            if labels in _paused:
                PAUSED.remove(*labels, _paused.pop(labels))
            if paused is not None:
                PAUSED.labels(*labels, paused).set(1)
                _paused[labels] = paused


def forget_running(labels: tuple[str, str, str]) -> None:
    """A finished rollout has no per-rollout series any more."""
    with _lock:
        for gauge in (STEP, STEPS, WEIGHT):
            try:
                gauge.remove(*labels)
            except KeyError:
                pass
        if labels in _paused:
            PAUSED.remove(*labels, _paused.pop(labels))
