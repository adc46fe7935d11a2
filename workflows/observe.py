"""`ObserveTarget`: ask a target what it runs now — one read-only activity of the target's own package,
through the worker that holds that target's credentials. `rollout start` asks it before it answers
"already done" for a spec whose last run ended Healthy, so that answer is never taken on trust."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from models.targets import ObserveInput, Target, TargetObservation
    from workflows import options


@workflow.defn(name="ObserveTarget")
class ObserveTarget:
    @workflow.run
    async def run(self, request: ObserveInput) -> TargetObservation:
        target = request.target
        workflow.set_current_details(f"reading what {target.describe()} runs now")
        return await observe(target, f"observe {target.describe()}",
                             start_to_close_timeout=timedelta(seconds=30), heartbeat_timeout=options.HEARTBEAT,
                             retry_policy=RetryPolicy(maximum_attempts=3, non_retryable_error_types=options.PERMANENT))


async def observe(target: Target, summary: str, **activity_options) -> TargetObservation:
    """The target's observer activity, named by its record (models/targets.py)."""
    return await workflow.execute_activity(target.chosen.OBSERVER, target.chosen, result_type=TargetObservation,
                                           summary=summary, **activity_options)

