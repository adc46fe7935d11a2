"""`ObserveTarget` on ECS: what the service runs now, read from ECS — the primary task set's task definition
and the container's image in it, its running count, and whether anything else is left beside it."""

from __future__ import annotations

from temporalio import activity

from activities.targets.ecs import tasksets
from activities.targets.ecs.client import AwsClients
from models.ecs import EcsTarget
from models.targets import TargetObservation


class EcsObserveActivities:
    def __init__(self, aws: AwsClients):
        self._aws = aws

    @activity.defn(name="observe_ecs_target")
    def observe(self, target: EcsTarget) -> TargetObservation:
        ecs = self._aws.ecs(target.region)
        service = tasksets.read_service(ecs, target)
        primary = service.primary()
        if primary is None:
            return TargetObservation(target=target.describe(), version="", ready=False, detail="no primary task set")
        image = tasksets.container_image(ecs, target, primary["taskDefinition"])
        want, running = primary.get("computedDesiredCount"), primary.get("runningCount")
        others = len(service.task_sets) - 1
        ready = (want is not None and running == want and not primary.get("pendingCount")
                 and primary.get("stabilityStatus") == "STEADY_STATE" and others == 0)
        detail = f"{running}/{want} tasks running" + (f", {others} other task set(s)" if others else "")
        return TargetObservation(target=target.describe(), version=image, ready=ready, detail=detail,
                                 instances=running, revision=primary["taskDefinition"].rsplit("/", 1)[-1])
