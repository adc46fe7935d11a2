"""Deployment metrics from the control plane, as it decides: the one thing workflow code does besides
orchestrating, and — like the SDK's own workflow metric meter — never while a workflow replays its
history (a rollout replayed after an eviction or a worker's death is not counted again). The metrics
are in-memory objects of the process's registry (models/metrics.py); nothing here does I/O."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models import metrics as m
    from models.status import Phase, Reason, RolloutStatus

UNCHANGED = (Reason.TARGET_INVALID.value, Reason.INVALID_POLICY.value)  # Degraded before anything changed


def _live() -> bool:
    return not workflow.unsafe.is_replaying()


def _kind(s: RolloutStatus) -> dict[str, str]:
    return {"strategy": s.strategy, "environment": s.environment}


def started(s: RolloutStatus) -> None:
    if _live():
        m.STARTED.labels(**_kind(s)).inc()


def shown(s: RolloutStatus) -> None:
    """After every phase or step change: the per-rollout gauges say where it is now."""
    if _live() and not s.phase.finished:
        m.show_running(_running(s), min(s.current_step + 1, s.total_steps or 1), s.total_steps,
                       s.exposure.desired / 100 if s.exposure.unit == "percent" else None,
                       (s.reason or "Paused") if s.phase is Phase.PAUSED else None)


def finished(s: RolloutStatus) -> None:
    if not _live():
        return
    kind = _kind(s)
    m.FINISHED.labels(**kind, phase=s.phase.value, reason=s.reason).inc()
    if s.started_at and s.finished_at:
        m.DURATION.labels(**kind, phase=s.phase.value).observe((s.finished_at - s.started_at).total_seconds())
    if (s.phase is Phase.DEGRADED and s.reason not in UNCHANGED) or s.reason == Reason.ROLLED_BACK.value:
        m.ROLLBACKS.labels(**kind, reason=s.reason).inc()
    m.forget_running(_running(s))


def approval_decided(s: RolloutStatus, waited_seconds: float, outcome: str) -> None:
    if _live():
        m.APPROVAL_WAIT.labels(environment=s.environment, outcome=outcome).observe(waited_seconds)


def measured(template: str, metric: str, phase: str) -> None:
    if _live():
        m.MEASUREMENTS.labels(template=template, metric=metric, phase=phase).inc()


def analysed(phase: str) -> None:
    if _live():
        m.ANALYSES.labels(phase=phase).inc()


def _running(s: RolloutStatus) -> tuple[str, str, str]:
    return (s.rollout_id, s.strategy, s.environment)
