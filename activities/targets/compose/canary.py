"""A canary of a Compose service through the proxy in front of it (activities/targets/compose/haproxy.py):
prepare (the service held for the rollout, the stable containers — of one configuration — in the backend),
set routes (capacity first: the canary's containers made and ready, then in the backend, then every
server's weight in one request; surplus canary containers go only after traffic has left them), promote
(the canary at full size, all weight to it in one request, the stable containers drained and removed) and
abort (all weight back to the stable containers in one request — no container started — then the canary's
drained and removed). Every activity reads the containers and the backend first and does only what is
missing: a retry after a crash finds its own earlier work by label."""

from __future__ import annotations

import math
import time

from temporalio import activity

from activities.docker import DockerHosts, docker_errors, invalid
from activities.targets.compose import containers as cs
from activities.targets.compose import lock
from activities.targets.compose.allowed import engine_for, proxy_for
from activities.targets.compose.backend import adopt, serve_ready
from activities.targets.compose.containers import Container
from activities.targets.compose.haproxy import split
from activities.targets.compose.inplace import late, newest, one_side, own_hash, tend
from activities.waiting import still_waiting, wait_started
from models.compose import ComposeRequest, ComposeRoutesInput
from models.delivery import PrepareCanaryResult, WeightResult


class ComposeCanaryActivities:
    def __init__(self, hosts: DockerHosts):
        self._hosts = hosts

    def _read(self, request: ComposeRequest, weight: int = 0):
        """(client, proxy, the canary's configuration, stable containers, canary containers): the stable ones of
        one configuration (more is refused: guessing would remove production), and every ready container in the
        backend again (a reload of HAProxy forgets servers added at run time), re-added at `weight`."""
        t = request.target
        client, proxy = engine_for(self._hosts, t), proxy_for(self._hosts, t)
        config = cs.wanted(t, request.image)
        want = cs.config_hash(config)
        found = cs.service_containers(client, t)
        canary = [c for c in found if own_hash(c) == want]
        stable = [c for c in found if own_hash(c) != want]
        one_side(t, stable)
        adopt(proxy, t, found, weight)
        return client, proxy, config, stable, canary

    @activity.defn(name="prepare_compose_canary")
    def prepare_canary(self, request: ComposeRequest) -> PrepareCanaryResult:
        return self.prepare(request)[0]

    def prepare(self, request: ComposeRequest) -> tuple[PrepareCanaryResult, list[Container]]:
        """The service held, the stable containers in the backend with every weight: what a canary and a
        blue-green start from (and the stable containers)."""
        t = request.target
        with docker_errors(cs.where(t)):
            client, proxy, config, stable, canary = self._read(request, 1)
            if not stable:
                raise invalid(f"{cs.where(t)}: no container of another version to run beside"
                              + (f" (it runs {request.image} already)" if canary else ""))
            lock.hold(client, t, request.rollout_id, config["image"])
            proxy.weigh(t.proxy.backend, {c.name: 1 for c in stable} | {c.name: 0 for c in canary})
        return PrepareCanaryResult(total_replicas=t.replicas(), stable_image=newest(stable).image,
                                   container=t.service), stable

    @activity.defn(name="set_compose_routes")
    def set_routes(self, request: ComposeRoutesInput) -> WeightResult:
        t, weight = request.target, request.routes.weight
        with docker_errors(cs.where(t)):
            client, proxy, config, stable, canary = self._read(request)
            count = _canary_count(request, t.replicas())
            if count:  # capacity first, on every attempt (a retry after a crash mid-wait waits too)
                canary = self.ensure(client, proxy, request, config, count, stable)
            ready = [c for c in canary if c.ready(t.ready_after_seconds)][:count] if count else []
            ws, wc, actual = split(weight, len(stable), len(ready))
            weights = {c.name: ws for c in stable} | {c.name: wc if c in ready else 0 for c in canary}
            changed = proxy.weigh(t.proxy.backend, weights)
            for container in sorted(canary, key=lambda c: -c.number)[:max(0, len(canary) - count)]:
                cs.remove(client, t, container, proxy)  # weighted out first, above
        return WeightResult(weight=weight, canary_replicas=count, stable_replicas=len(stable), actual_weight=actual,
                            changed=changed)

    @activity.defn(name="promote_compose_canary")
    def promote_canary(self, request: ComposeRequest) -> None:
        t = request.target
        with docker_errors(cs.where(t)):
            client, proxy, config, stable, canary = self._read(request)
            canary = self.ensure(client, proxy, request, config, t.replicas(), stable)
            proxy.weigh(t.proxy.backend, {c.name: 0 for c in stable} | {c.name: 1 for c in canary})
            for container in stable:
                cs.remove(client, t, container, proxy)
            lock.release(client, t, request.rollout_id)

    @activity.defn(name="abort_compose_canary")
    def abort_canary(self, request: ComposeRequest) -> None:
        t = request.target
        with docker_errors(cs.where(t)):
            client, proxy, _, stable, canary = self._read(request)
            if not stable:
                raise invalid(f"{cs.where(t)}: {request.image} already replaced every container; abort cannot go back")
            proxy.weigh(t.proxy.backend, {c.name: 1 for c in stable} | {c.name: 0 for c in canary})
            for container in canary:
                cs.remove(client, t, container, proxy)
            lock.release(client, t, request.rollout_id)

    def ensure(self, client, proxy, request: ComposeRequest, config: dict, count: int,
               stable: list[Container]) -> list[Container]:
        """`count` canary containers, ready and in the backend at weight 0, within the progress deadline."""
        t = request.target
        want = cs.config_hash(config)
        previous = newest(stable).config() if stable else None
        name = f"compose-canary:{t.host}/{t.project}/{t.service}:{want[:12]}:{count}"
        started, ready_before = wait_started(name), -1  # the deadline counts from the last progress
        while True:
            everything = cs.service_containers(client, t)
            canary = [c for c in everything if own_hash(c) == want]
            tend(client, t, config, canary)
            if len(canary) < count:
                number = max((c.number for c in everything), default=0) + 1
                revision = max((c.revision for c in everything), default=0) + 1
                cs.create(client, t, config, number, request.rollout_id, previous,
                          canary[0].revision if canary else revision)
                continue
            serve_ready(proxy, t, canary, proxy.servers(t.proxy.backend), 0)
            if t.proxy.preview_backend:  # a blue-green's preview, tested there
                serve_ready(proxy, t, canary, proxy.servers(t.proxy.preview_backend), 1, t.proxy.preview_backend)
            served = proxy.servers(t.proxy.backend)
            ready = sum(1 for c in canary if c.ready(t.ready_after_seconds) and c.name in served)
            if ready >= count:
                return canary
            if ready > ready_before:
                started, ready_before = time.time(), ready
            late(request, started, f"{ready}/{count} canary containers ready", canary)
            still_waiting(name, started, cs.where(t))
            time.sleep(0.5)


def _canary_count(request: ComposeRoutesInput, replicas: int) -> int:
    """setCanaryScale's count, or the weight's share of the replicas; at least one while traffic goes to it."""
    scale, weight = request.canary_scale, request.routes.weight
    if scale is not None and scale.replicas is not None:
        count = scale.replicas
    elif scale is not None and scale.weight is not None:
        count = math.ceil(replicas * scale.weight / 100)
    else:
        count = math.ceil(replicas * weight / 100)
    return min(replicas, max(count, 1 if weight > 0 else 0))
