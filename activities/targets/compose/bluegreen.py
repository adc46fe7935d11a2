"""Blue-green of a Compose service through the proxy on the host: the preview's containers join the
production backend at weight 0 (and the preview backend, if the target names one, where they are tested);
the switch is one runtime request that gives them every weight and the old containers none; the old
containers stay running (warm) until completion, so switching back is one request again and starts no
container. Completion drains and removes the old containers; an abort removes the preview's. It shares the
canary's reading of the two sides (activities/targets/compose/canary.py): the preview is a candidate that
takes all traffic at once."""

from __future__ import annotations

from temporalio import activity

from activities.docker import docker_errors
from activities.targets.compose import containers as cs
from activities.targets.compose.canary import ComposeCanaryActivities
from activities.targets.compose.haproxy import split
from activities.targets.compose.inplace import own_hash
from models.compose import ComposeRequest, ComposeSwitchInput
from models.delivery import BlueGreenPrepared


class ComposeBlueGreenActivities(ComposeCanaryActivities):
    @activity.defn(name="prepare_compose_blue_green")
    def prepare_blue_green(self, request: ComposeRequest) -> BlueGreenPrepared:
        prepared, stable = self.prepare(request)
        return BlueGreenPrepared(total_replicas=prepared.total_replicas, stable_image=prepared.stable_image,
                                 stable_hash=own_hash(stable[0])[:12], container=prepared.container)

    @activity.defn(name="scale_compose_preview")
    def scale_preview(self, request: ComposeSwitchInput) -> int:
        """`replicas` preview containers, ready and in the backends (no production weight)."""
        t = request.target
        with docker_errors(cs.where(t)):
            client, proxy, config, stable, _ = self._read(request)
            self.ensure(client, proxy, request, config, request.replicas or 0, stable)
        return request.replicas or 0

    @activity.defn(name="shift_compose_traffic")
    def shift_traffic(self, request: ComposeSwitchInput) -> int:
        """gradualShift: the preview at full size first, then `weight` % of production to it, in one request."""
        t, weight = request.target, request.weight or 0
        with docker_errors(cs.where(t)):
            client, proxy, config, stable, _ = self._read(request)
            preview = self.ensure(client, proxy, request, config, t.replicas(), stable)
            ws, wc, _ = split(weight, len(stable), len(preview))
            proxy.weigh(t.proxy.backend, {c.name: ws for c in stable} | {c.name: wc for c in preview})
        return weight

    @activity.defn(name="switch_compose_production")
    def switch_active(self, request: ComposeSwitchInput) -> str:
        """Every weight to the preview (at full size first) or back to the warm old containers: one request."""
        t = request.target
        with docker_errors(cs.where(t)):
            client, proxy, config, stable, preview = self._read(request)
            if request.to == "preview":
                preview = self.ensure(client, proxy, request, config, t.replicas(), stable)
            live = 1 if request.to == "preview" else 0  # the side taking traffic is weighted up first
            proxy.weigh(t.proxy.backend, {c.name: 1 - live for c in stable} | {c.name: live for c in preview})
        return request.to

    @activity.defn(name="complete_compose_blue_green")
    def complete_blue_green(self, request: ComposeRequest) -> None:
        """The old containers drained out of the backend and removed."""
        self.promote_canary(request)

    @activity.defn(name="abort_compose_blue_green")
    def abort_blue_green(self, request: ComposeRequest) -> None:
        """Production on the old containers (already, after a switch back), the preview's removed."""
        self.abort_canary(request)
