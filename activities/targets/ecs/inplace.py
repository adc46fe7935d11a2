"""In-place updates on ECS (rollingUpdate, recreate, `rollout undo`, `rollout restart`): a new task set
behind the primary's own target group, so production traffic reaches old and new tasks alike as their
targets become healthy — no weights change. Rolling keeps at most desiredCount + maxSurge tasks and at
least desiredCount − maxUnavailable healthy ones (as a Kubernetes Deployment does), growing the new task
set before shrinking the old; Recreate stops the old one first. Then the new task set becomes primary and
the old one is deleted. Undo is the same update to an earlier task definition revision of the family
(no registration: the revision as it was); after a failed update it puts the old task set back to full
size instead, while it still exists."""

from __future__ import annotations

import hashlib

from temporalio import activity

from activities.aws import AwsClients, aws_errors, invalid
from activities.targets.ecs import tasksets
from activities.targets.ecs.tasksets import Service, computed
from models.delivery import RollOutResult, surge_and_unavailable
from models.ecs import EcsRequest, EcsRollOutInput, EcsTarget


def _revision(arn: str) -> int:
    return int(arn.rsplit(":", 1)[-1])


class EcsInPlaceActivities:
    def __init__(self, aws: AwsClients):
        self._aws = aws

    def _ours(self, request: EcsRequest, service: Service) -> list[dict]:
        return [ts for ts in service.task_sets if ts.get("externalId", "").startswith(f"durable-rollouts/{request.rollout_id}/")]

    def definition(self, ecs, request: EcsRollOutInput, primary: dict) -> str:
        """The task definition the update runs (Undo: `to_revision`, or the family's revision before the primary's)."""
        t, current = request.target, primary["taskDefinition"]
        if request.kind == "Restart":
            return current
        if request.kind != "Undo":
            return tasksets.revision_with(ecs, t, current, request.image)
        family = current.rsplit("/", 1)[-1].rsplit(":", 1)[0]
        if request.to_revision:
            with aws_errors(f"task definition {family}:{request.to_revision}"):
                return ecs.describe_task_definition(taskDefinition=f"{family}:{request.to_revision}")["taskDefinition"]["taskDefinitionArn"]
        earlier = tasksets.tag(primary, tasksets.PREVIOUS_TAG) or self.earlier(ecs, current)  # what it replaced
        if earlier is None:
            raise invalid(f"{tasksets.where(t)}: no task definition revision of {family} before {_revision(current)}")
        return earlier

    @staticmethod
    def earlier(ecs, current: str) -> str | None:
        """The ACTIVE revision of `current`'s family just before it (None: there is none)."""
        family = current.rsplit("/", 1)[-1].rsplit(":", 1)[0]
        with aws_errors(f"task definition family {family}"):
            pages = ecs.get_paginator("list_task_definitions").paginate(familyPrefix=family, status="ACTIVE", sort="DESC")
            earlier = [arn for page in pages for arn in page["taskDefinitionArns"]
                       if arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] == family and _revision(arn) < _revision(current)]
        return earlier[0] if earlier else None

    @activity.defn(name="roll_out_ecs")
    def roll_out(self, request: EcsRollOutInput) -> RollOutResult:
        t = request.target
        ecs, elbv2 = self._aws.ecs(t.region), self._aws.elbv2(t.region)
        service = tasksets.read_service(ecs, t)
        primary = tasksets.primary_behind_group(t, service)
        if primary.get("externalId") != self._external(request):
            tasksets.refuse_strangers(t, service)
        with tasksets.holding(ecs, t, service, request.rollout_id, undone_after=True):
            return self._roll_out(ecs, elbv2, request, service, primary)

    @staticmethod
    def _external(request: EcsRollOutInput) -> str:
        """Our task set for this very request (a retry finds it)."""
        asked = f"{request.kind}/{request.image}/{request.to_revision}/{request.restarted_at}"
        return f"durable-rollouts/{request.rollout_id}/{request.kind.lower()}/{hashlib.sha256(asked.encode()).hexdigest()[:12]}"

    def _roll_out(self, ecs, elbv2, request: EcsRollOutInput, service: Service, primary: dict) -> RollOutResult:
        t = request.target
        external = self._external(request)
        if request.kind == "Undo" and request.to_revision and _revision(primary["taskDefinition"]) == request.to_revision \
                and len(service.task_sets) == 1:  # runs it already (the rollback window switched to it)
            tasksets.release(ecs, t, service, request.rollout_id)
            image = tasksets.container_image(ecs, t, primary["taskDefinition"])
            return RollOutResult(previous_image=image, previous_revision=request.to_revision,
                                 revision=request.to_revision, replicas=service.desired, image=image)
        if primary.get("externalId") == external:  # done (a retry after the switch): what it replaced to remove
            new, replaced = primary, service.by_id(tasksets.tag(primary, tasksets.REPLACES_TAG))
            previous = tasksets.tag(primary, tasksets.PREVIOUS_TAG) or primary["taskDefinition"]
        else:
            found = service.external(external)
            definition = found["taskDefinition"] if found else self.definition(ecs, request, primary)
            group = primary["loadBalancers"][0]["targetGroupArn"]
            new = tasksets.ensure_task_set(ecs, t, service, external, definition, group, 0.0, replaces=primary)
            replaced, previous = primary, primary["taskDefinition"]
            self._replace(ecs, elbv2, t, request, service.desired, primary, new)
        tasksets.make_primary(ecs, t, new)
        if replaced is not None and replaced["taskSetArn"] != new["taskSetArn"]:  # exactly the one it replaced
            tasksets.delete_task_set(ecs, t, replaced)
        tasksets.release(ecs, t, service, request.rollout_id)
        return RollOutResult(previous_image=tasksets.container_image(ecs, t, previous), previous_revision=_revision(previous),
                             revision=_revision(new["taskDefinition"]), replicas=service.desired,
                             image=tasksets.container_image(ecs, t, new["taskDefinition"]))

    def _replace(self, ecs, elbv2, t: EcsTarget, request: EcsRollOutInput, desired: int, old: dict, new: dict) -> None:
        """Grow `new` and shrink `old` (both behind one target group) until only `new` runs, at full size."""
        deadline = request.progress_deadline_seconds
        old_count = computed(desired, float((old.get("scale") or {}).get("value", 100)))
        new_count = computed(desired, float((new.get("scale") or {}).get("value", 0)))
        if request.kind == "Recreate":
            tasksets.set_scale(ecs, t, old, 0.0)
            tasksets.wait_capacity(ecs, elbv2, t, old, 0, deadline, healthy_needed=0)
            tasksets.set_scale(ecs, t, new, 100.0)
            tasksets.wait_capacity(ecs, elbv2, t, new, desired, deadline)
            return
        surge, unavailable = surge_and_unavailable(request.max_surge, request.max_unavailable, desired)
        while new_count < desired or old_count > 0:
            grow = min(desired, desired + surge - old_count)
            if grow > new_count:
                new_count = grow
                tasksets.set_scale(ecs, t, new, tasksets.percent_for(new_count, desired), known=False)
            if new_count:  # on every attempt, a retry's too: the new tasks healthy before any old one stops
                tasksets.wait_capacity(ecs, elbv2, t, new, new_count, deadline, healthy_needed=new_count + old_count)
            shrink = max(0, desired - unavailable - new_count)
            if shrink < old_count:
                old_count = shrink
                tasksets.set_scale(ecs, t, old, tasksets.percent_for(old_count, desired), known=False)
                tasksets.wait_capacity(ecs, elbv2, t, old, old_count, deadline, healthy_needed=0)
            elif grow <= new_count:
                raise invalid(f"{tasksets.where(t)}: maxSurge and maxUnavailable leave nothing to move")

    @activity.defn(name="undo_ecs")
    def undo(self, request: EcsRollOutInput) -> str:
        """After a failed or aborted update: the old task set back to full size and ours removed while the old
        one is still there; otherwise an update to the revision before the current one. The image it runs."""
        t = request.target
        ecs, elbv2 = self._aws.ecs(t.region), self._aws.elbv2(t.region)
        service = tasksets.read_service(ecs, t)
        primary = service.primary()
        unfinished = [ts for ts in self._ours(request, service) if ts is not primary]
        if primary is not None and unfinished:
            tasksets.set_scale(ecs, t, primary, 100.0)
            tasksets.wait_capacity(ecs, elbv2, t, primary, service.desired, request.progress_deadline_seconds,
                                   healthy_needed=0)
            for task_set in unfinished:
                tasksets.delete_task_set(ecs, t, task_set)
            tasksets.release(ecs, t, service, request.rollout_id)
            return tasksets.container_image(ecs, t, primary["taskDefinition"])
        undone = self.roll_out(request.model_copy(update={"kind": "Undo", "to_revision": 0,
                                                          "rollout_id": f"{request.rollout_id}/undo"}))
        return undone.image
