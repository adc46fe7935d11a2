"""Blue-green on ECS: the preview is a second task set behind the other target group, which the test
listener sends to; promotion switches the production listener's forward action to it in one ModifyListener
call; the old task set stays at full size (warm) until completion, so switching back starts no task.
Completion makes the new task set primary and deletes the old one; an abort deletes the preview.

As with the canary, every activity reads first and changes only what differs (activities/targets/ecs/)."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.targets.ecs import listener, tasksets
from activities.targets.ecs.canary import EcsCanaryActivities
from activities.targets.ecs.tasksets import computed
from models.delivery import BlueGreenPrepared
from models.ecs import EcsRequest, EcsSwitchInput, EcsTarget


class EcsBlueGreenActivities(EcsCanaryActivities):
    """Shares the canary's reading of the two sides (which task set is primary, which target group each is
    behind): a blue-green's preview is a candidate that takes all traffic at once."""

    def _test_listener(self, elbv2, t: EcsTarget, preview_group: str, stable_group: str) -> bool:
        if t.load_balancer.test_listener is None:
            return False
        on_test = t.model_copy(update={"load_balancer": t.load_balancer.model_copy(
            update={"listener": t.load_balancer.test_listener, "rule": None})})
        return listener.set_weights(elbv2, on_test, {stable_group: 0, preview_group: 100})

    @activity.defn(name="prepare_ecs_blue_green")
    def prepare_blue_green(self, request: EcsRequest) -> BlueGreenPrepared:
        """The preview task set at scale 0 behind the other target group, the test listener sending to it;
        production stays on the primary."""
        prepared = self.prepare_canary(request)
        t = request.target
        ecs, elbv2 = self._clients(t)
        service = tasksets.read_service(ecs, t)
        primary, stable_group, preview_group = self._sides(request, service)
        try:
            self._test_listener(elbv2, t, preview_group, stable_group)
        except ApplicationError as error:
            if error.non_retryable:  # the workflow ends on it with nothing to undo: undo the preview here
                self.abort_canary(request)
            raise
        return BlueGreenPrepared(total_replicas=prepared.total_replicas, stable_image=prepared.stable_image,
                                 stable_hash=primary["taskSetArn"].rsplit("/", 1)[-1], container=prepared.container)

    @activity.defn(name="scale_ecs_preview")
    def scale_preview(self, request: EcsSwitchInput) -> int:
        """The preview to `replicas` tasks (a scale in percent of the service), waited for."""
        t = request.target
        ecs, elbv2 = self._clients(t)
        service, preview, *_ = self._candidate(request)
        percent = tasksets.percent_for(request.replicas or 0, service.desired)
        tasksets.set_scale(ecs, t, preview, percent)
        return tasksets.wait_capacity(ecs, elbv2, t, preview, computed(service.desired, percent),
                                      request.progress_deadline_seconds)

    def _full_preview(self, request: EcsSwitchInput):
        t = request.target
        ecs, elbv2 = self._clients(t)
        service, preview, _, stable_group, preview_group = self._candidate(request)
        tasksets.set_scale(ecs, t, preview, 100.0)
        tasksets.wait_capacity(ecs, elbv2, t, preview, service.desired, request.progress_deadline_seconds)
        return elbv2, stable_group, preview_group

    @activity.defn(name="shift_ecs_traffic")
    def shift_traffic(self, request: EcsSwitchInput) -> int:
        """gradualShift: the preview at full size first, then `weight` % of production traffic to it."""
        elbv2, stable_group, preview_group = self._full_preview(request)
        weight = request.weight or 0
        listener.set_weights(elbv2, request.target, {stable_group: 100 - weight, preview_group: weight})
        return weight

    @activity.defn(name="switch_ecs_production")
    def switch_active(self, request: EcsSwitchInput) -> str:
        """Production traffic to the preview (at full size first) or back to the warm stable side, in one
        ModifyListener call. Switching back starts no task: the stable task set never left full size."""
        t = request.target
        if request.to == "preview":
            elbv2, stable_group, preview_group = self._full_preview(request)
        else:
            ecs, elbv2 = self._clients(t)
            service = tasksets.read_service(ecs, t)
            _, stable_group, preview_group = self._sides(request, service)
        live = preview_group if request.to == "preview" else stable_group
        listener.set_weights(elbv2, t, {stable_group: 100 if live == stable_group else 0,
                                        preview_group: 100 if live == preview_group else 0})
        return live

    @activity.defn(name="complete_ecs_blue_green")
    def complete_blue_green(self, request: EcsRequest) -> None:
        """The preview becomes primary; the old task set is deleted; the service released."""
        self.promote_canary(request)

    @activity.defn(name="abort_ecs_blue_green")
    def abort_blue_green(self, request: EcsRequest) -> None:
        """Production on the primary (already, after a switch back), the preview deleted, the service released."""
        self.abort_canary(request)
