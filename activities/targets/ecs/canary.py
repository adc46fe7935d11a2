"""Canary activities on ECS: prepare (the candidate task set at scale 0 behind the side's other target
group), set routes (capacity first: scale the candidate, wait until its tasks run and its targets are
healthy, then move the ALB's weights and header rules; shrink only after traffic has left), promote (the
candidate to full size, all traffic to it, primary, the old task set deleted) and abort (all traffic back
to the primary, header rules and the candidate removed).

Each activity reads first and changes only what differs: a retry after a crash finds its own earlier work
(our task set by its externalId, our rules by their tag) and makes no call twice."""

from __future__ import annotations

from temporalio import activity

from activities.aws import AwsClients, invalid
from activities.targets.ecs import listener, tasksets
from activities.targets.ecs.tasksets import Service, computed
from models.delivery import PrepareCanaryResult, WeightResult
from models.ecs import EcsRequest, EcsRoutesInput, EcsTarget


class EcsCanaryActivities:
    def __init__(self, aws: AwsClients):
        self._aws = aws

    def _clients(self, t: EcsTarget):
        return self._aws.ecs(t.region), self._aws.elbv2(t.region)

    def _sides(self, request: EcsRequest, service: Service) -> tuple[dict, str, str]:
        """(the primary task set, its target group, the candidate's target group)."""
        t = request.target
        primary = service.primary()
        if primary is None:
            raise invalid(f"{tasksets.where(t)}: has no primary task set to run beside (deliver a first version "
                          "with the service's own tooling)")
        stable_group = primary["loadBalancers"][0]["targetGroupArn"] if primary.get("loadBalancers") else ""
        groups = t.load_balancer.target_groups
        if stable_group not in groups:
            raise invalid(f"{tasksets.where(t)}: its primary task set is behind {stable_group or 'no target group'}, "
                          "not one of target.ecs.loadBalancer.targetGroups")
        return primary, stable_group, groups[1] if stable_group == groups[0] else groups[0]

    @activity.defn(name="prepare_ecs_canary")
    def prepare_canary(self, request: EcsRequest) -> PrepareCanaryResult:
        """Hold the service, register the candidate's revision, create its task set at scale 0, and make sure
        all traffic goes to the primary."""
        t = request.target
        ecs, elbv2 = self._clients(t)
        service = tasksets.read_service(ecs, t)
        external = tasksets.external_id(request.rollout_id, request.image)
        primary, stable_group, candidate_group = self._sides(request, service)
        if primary.get("externalId") == external:
            raise invalid(f"{tasksets.where(t)}: already runs {request.image} as its primary task set")
        tasksets.refuse_strangers(t, service)
        listener.check_groups(elbv2, t, candidate_group, [ts for ts in service.task_sets if ts is not primary]
                              + service.draining)
        stable_image = tasksets.container_image(ecs, t, primary["taskDefinition"])
        revision = tasksets.revision_with(ecs, t, primary["taskDefinition"], request.image)
        with tasksets.holding(ecs, t, service, request.rollout_id):  # checked first: a refusal leaves no tag
            for other in service.task_sets:  # a candidate an earlier rollout left behind (its abort did not finish)
                if other is not primary and other.get("externalId") != external:
                    listener.set_weights(elbv2, t, {stable_group: 100, candidate_group: 0})
                    tasksets.delete_task_set(ecs, t, other)
            tasksets.ensure_task_set(ecs, t, service, external, revision, candidate_group, 0.0, replaces=primary)
            listener.set_weights(elbv2, t, {stable_group: 100, candidate_group: 0})
        return PrepareCanaryResult(total_replicas=service.desired, stable_image=stable_image, container=t.container)

    def _candidate(self, request: EcsRequest) -> tuple[Service, dict, dict, str, str]:
        t = request.target
        service = tasksets.read_service(self._aws.ecs(t.region), t)
        candidate = service.external(tasksets.external_id(request.rollout_id, request.image))
        if candidate is None:
            raise invalid(f"{tasksets.where(t)}: the candidate task set of rollout {request.rollout_id} is gone")
        primary, stable_group, candidate_group = self._sides(request, service) if candidate.get("status") != "PRIMARY" \
            else (candidate, "", candidate["loadBalancers"][0]["targetGroupArn"])
        return service, candidate, primary, stable_group, candidate_group

    @activity.defn(name="set_ecs_routes")
    def set_routes(self, request: EcsRoutesInput) -> WeightResult:
        """The step's whole routing, capacity first."""
        t, routes = request.target, request.routes
        ecs, elbv2 = self._clients(t)
        service, candidate, _, stable_group, candidate_group = self._candidate(request)
        percent = _canary_percent(request, service.desired)
        before = float((candidate.get("scale") or {}).get("value", 0))
        changed = False
        if percent > before:
            changed |= tasksets.set_scale(ecs, t, candidate, percent)
        if routes.sends_to_canary:  # capacity first, on every attempt (a retry after a crash mid-wait waits too)
            tasksets.wait_capacity(ecs, elbv2, t, candidate, computed(service.desired, max(percent, before)),
                                   request.progress_deadline_seconds)
        changed |= listener.set_weights(elbv2, t, {stable_group: 100 - routes.weight, candidate_group: routes.weight})
        changed |= listener.set_header_rules(elbv2, t, request.rollout_id, routes.header_routes, candidate_group)
        if percent < before:
            changed |= tasksets.set_scale(ecs, t, candidate, percent)
        return WeightResult(weight=routes.weight, canary_replicas=computed(service.desired, percent),
                            stable_replicas=service.desired, actual_weight=float(routes.weight), changed=changed)

    @activity.defn(name="promote_ecs_canary")
    def promote_canary(self, request: EcsRequest) -> None:
        """Candidate to full size (waited for), all traffic to it, primary; header rules and the old task
        set removed; the service released."""
        t = request.target
        ecs, elbv2 = self._clients(t)
        service, candidate, _, stable_group, candidate_group = self._candidate(request)
        tasksets.set_scale(ecs, t, candidate, 100.0)
        tasksets.wait_capacity(ecs, elbv2, t, candidate, service.desired, request.progress_deadline_seconds)
        other = [g for g in t.load_balancer.target_groups if g != candidate_group][0]
        listener.set_weights(elbv2, t, {other: 0, candidate_group: 100})
        listener.set_header_rules(elbv2, t, request.rollout_id, [], candidate_group)
        tasksets.make_primary(ecs, t, candidate)
        replaced = service.by_id(tasksets.tag(candidate, tasksets.REPLACES_TAG))
        if replaced is not None:  # exactly the primary it was made beside (gone already on a retry)
            tasksets.delete_task_set(ecs, t, replaced)
        tasksets.release(ecs, t, service, request.rollout_id)

    @activity.defn(name="abort_ecs_canary")
    def abort_canary(self, request: EcsRequest) -> None:
        """All traffic back to the primary, header rules removed, the candidate deleted, the service released."""
        t = request.target
        ecs, elbv2 = self._clients(t)
        service = tasksets.read_service(ecs, t)
        candidate = service.external(tasksets.external_id(request.rollout_id, request.image))
        if candidate is not None and candidate.get("status") == "PRIMARY":
            raise invalid(f"{tasksets.where(t)}: {request.image} is already primary; abort cannot go back")
        _, stable_group, candidate_group = self._sides(request, service)
        listener.set_weights(elbv2, t, {stable_group: 100, candidate_group: 0})
        listener.set_header_rules(elbv2, t, request.rollout_id, [], candidate_group)
        if candidate is not None:
            tasksets.delete_task_set(ecs, t, candidate)
        tasksets.release(ecs, t, service, request.rollout_id)


def _canary_percent(request: EcsRoutesInput, desired: int) -> float:
    """The candidate's scale in percent: setCanaryScale's, or the weight; at least one task while any
    traffic (a weight or a header route) goes to it."""
    scale, routes = request.canary_scale, request.routes
    if scale is not None and scale.replicas is not None:
        percent = tasksets.percent_for(scale.replicas, desired)
    elif scale is not None and scale.weight is not None:
        percent = float(scale.weight)
    else:
        percent = float(routes.weight)
    percent = min(100.0, percent)
    if routes.sends_to_canary and computed(desired, percent) == 0 and desired:
        percent = tasksets.percent_for(1, desired)  # one task
    return percent
