"""The rollback window on ECS: after a Healthy rollout, the task definition revision before the primary's
runs warm (full size, its targets healthy) as a task set behind the other target group, which takes no
traffic; switching back is one ModifyListener call to that target group, then the warm task set becomes
primary and the newer one is deleted; closing the window deletes the warm task set. One revision: the
two target groups leave one spare."""

from __future__ import annotations

from temporalio import activity

from activities.aws import AwsClients, invalid
from activities.targets.ecs import listener, tasksets
from activities.targets.ecs.inplace import EcsInPlaceActivities
from models.delivery import WarmRevision
from models.ecs import EcsWindowInput


class EcsWindowActivities:
    def __init__(self, aws: AwsClients):
        self._aws = aws

    def _warm(self, request: EcsWindowInput, service: tasksets.Service) -> list[dict]:
        return [ts for ts in service.task_sets
                if ts.get("externalId", "").startswith(f"durable-rollouts/{request.rollout_id}/warm/")]

    @activity.defn(name="keep_ecs_warm")
    def keep_warm(self, request: EcsWindowInput) -> list[WarmRevision]:
        t = request.target
        ecs, elbv2 = self._aws.ecs(t.region), self._aws.elbv2(t.region)
        service = tasksets.read_service(ecs, t)
        primary = tasksets.primary_behind_group(t, service)
        live = primary["loadBalancers"][0]["targetGroupArn"]
        spare = next(g for g in t.load_balancer.target_groups if g != live)
        # what the primary replaced (its tag), else the family's revision before it
        previous = tasksets.tag(primary, tasksets.PREVIOUS_TAG) or EcsInPlaceActivities.earlier(ecs, primary["taskDefinition"])
        if previous is None:
            return []
        external = f"durable-rollouts/{request.rollout_id}/warm/{previous.rsplit(':', 1)[-1]}"
        listener.check_groups(elbv2, t, spare, self._warm(request, service) + service.draining)
        tasksets.hold(ecs, t, service, request.rollout_id)  # held while the window is open: released by close
        warm = tasksets.ensure_task_set(ecs, t, service, external, previous, spare, 100.0)
        tasksets.wait_capacity(ecs, elbv2, t, warm, service.desired, request.progress_deadline_seconds)
        return [WarmRevision(revision=int(previous.rsplit(":", 1)[-1]),
                             image=tasksets.container_image(ecs, t, previous))]

    @activity.defn(name="switch_ecs_to_warm")
    def switch_to_warm(self, request: EcsWindowInput) -> None:
        """Production to the warm task set in one call; it becomes primary, the newer one is deleted."""
        t = request.target
        ecs, elbv2 = self._aws.ecs(t.region), self._aws.elbv2(t.region)
        service = tasksets.read_service(ecs, t)
        warm = next((ts for ts in self._warm(request, service) if ts["externalId"].endswith(f"/{request.revision}")), None)
        if warm is None:
            raise invalid(f"{tasksets.where(t)}: no warm task set of revision {request.revision}")
        group = warm["loadBalancers"][0]["targetGroupArn"]
        tasksets.wait_capacity(ecs, elbv2, t, warm, service.desired, request.progress_deadline_seconds)
        listener.set_weights(elbv2, t, {g: 100 if g == group else 0 for g in t.load_balancer.target_groups})
        tasksets.make_primary(ecs, t, warm)
        for newer in service.task_sets:  # the rollout's own version it replaces (a retry finds it ACTIVE)
            if newer is not warm and str(newer.get("externalId", "")).startswith(f"durable-rollouts/{request.rollout_id}/"):
                tasksets.delete_task_set(ecs, t, newer)

    @activity.defn(name="close_ecs_window")
    def close_window(self, request: EcsWindowInput) -> None:
        t = request.target
        ecs = self._aws.ecs(t.region)
        service = tasksets.read_service(ecs, t)
        for warm in self._warm(request, service):
            if warm.get("status") != "PRIMARY":
                tasksets.delete_task_set(ecs, t, warm)
        tasksets.release(ecs, t, service, request.rollout_id)
