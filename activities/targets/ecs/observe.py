"""`ObserveTarget` on ECS: what the service runs now, read from ECS — the primary task set's task definition
and the container's image in it, its running count, and whether anything else is left beside it."""

from __future__ import annotations

from temporalio import activity

from activities.aws import AwsClients, aws_errors, invalid
from activities.targets.ecs import tasksets
from models.ecs import EcsSideInput, EcsTarget
from models.targets import TargetObservation


class EcsObserveActivities:
    def __init__(self, aws: AwsClients):
        self._aws = aws

    @activity.defn(name="ecs_target_group")
    def target_group(self, request: EcsSideInput) -> str:
        """valueFrom.targetGroupValue: a side's target group as CloudWatch's TargetGroup dimension names it."""
        t = request.target
        service = tasksets.read_service(self._aws.ecs(t.region), t)
        side = service.primary() if request.role == "Stable" or request.in_place else \
            service.external(tasksets.external_id(request.rollout_id, request.image))
        if side is None or not side.get("loadBalancers"):
            raise invalid(f"{tasksets.where(t)}: no {request.role} task set behind a target group")
        return side["loadBalancers"][0]["targetGroupArn"].split(":", 5)[-1]

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
        healthy = 0
        if primary.get("loadBalancers"):  # evidence from the ALB too: every running task's target healthy
            with aws_errors(tasksets.where(target)):
                health = self._aws.elbv2(target.region).describe_target_health(
                    TargetGroupArn=primary["loadBalancers"][0]["targetGroupArn"])["TargetHealthDescriptions"]
            healthy = sum(1 for h in health if h["TargetHealth"]["State"] == "healthy")
        ready = (want is not None and running == want and not primary.get("pendingCount") and healthy >= (running or 0)
                 and primary.get("stabilityStatus") == "STEADY_STATE" and others == 0)
        detail = f"{running}/{want} tasks running, {healthy} healthy targets" + (
            f", {others} other task set(s)" if others else "")
        return TargetObservation(target=target.describe(), version=image, ready=ready, detail=detail,
                                 instances=running, revision=primary["taskDefinition"].rsplit("/", 1)[-1])
