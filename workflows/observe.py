"""`ObserveTarget`: ask a target what it runs now — one read-only activity of the target's own package,
through the worker that holds that target's credentials. `rollout start` asks it before it answers
"already done" for a spec whose last run ended Healthy, so that answer is never taken on trust."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.targets.kubernetes.observe import ObserveActivities
    from models.kubernetes import KubernetesTarget
    from models.targets import ObserveInput, TargetObservation
    from workflows import options

OBSERVERS = {"kubernetes": ObserveActivities.observe_kubernetes_target}  # one per target kind


@workflow.defn(name="ObserveTarget")
class ObserveTarget:
    @workflow.run
    async def run(self, request: ObserveInput) -> TargetObservation:
        target = request.target
        workflow.set_current_details(f"reading what {target.describe()} runs now")
        return await workflow.execute_activity_method(
            OBSERVERS[target.kind], target.chosen, summary=f"observe {target.describe()}",
            start_to_close_timeout=timedelta(seconds=30), heartbeat_timeout=options.HEARTBEAT,
            retry_policy=RetryPolicy(maximum_attempts=3, non_retryable_error_types=options.PERMANENT),
        )


def template_hashes(target: KubernetesTarget, latest: str, stable: str | None) -> Callable[[str], Awaitable[str]]:
    """What a strategy hands its analyses for valueFrom.podTemplateHashValue: role (Latest, Stable) -> the
    pod-template-hash of that Deployment's current revision in the target's namespace, read when asked."""
    deployments = {"Latest": latest} | ({"Stable": stable} if stable else {})

    async def read(role: str) -> str:
        where = target.model_copy(update={"deployment": deployments[role]})
        return await workflow.execute_activity_method(
            ObserveActivities.pod_template_hash, where, summary=f"{role} pods' template hash: {where.describe()}",
            start_to_close_timeout=timedelta(seconds=30), heartbeat_timeout=options.HEARTBEAT,
            retry_policy=RetryPolicy(maximum_attempts=15, maximum_interval=timedelta(seconds=2),
                                     non_retryable_error_types=options.PERMANENT))

    return read
