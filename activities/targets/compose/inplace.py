"""In-place updates of a Compose service (rollingUpdate, recreate, `rollout undo`, `rollout restart`), as
docker-rollout does them but with a gate and a memory: new containers beside the old ones, at most
replicas + maxSurge in all, each ready (its health check healthy, or running `readyAfterSeconds` without
one) before an old one is drained (the pre-stop hook), stopped and removed, never fewer than
replicas − maxUnavailable ready; Recreate removes the old ones first. Level-triggered: every pass reads the
service's containers by label and does the next missing thing, so a retried attempt after a worker's crash
adopts what the killed one made (a container created and not started is started) and doubles nothing.
Undo puts back the configuration the newest containers replaced (their label): after a failed update the
old containers are still there and only the new ones go."""

from __future__ import annotations

import json
import math
import time

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.docker import DockerHosts, docker_errors, invalid
from activities.targets.compose import containers as cs
from activities.targets.compose.backend import adopt, proxy_of, serve_ready
from activities.targets.compose.containers import Container
from activities.waiting import still_waiting, wait_started
from models.compose import ComposeRollOutInput
from models.delivery import RollOutResult


def count(value: int | str | None, replicas: int, round_up: bool) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        share = replicas * int(value.rstrip("%")) / 100
        return math.ceil(share) if round_up else math.floor(share)
    return value


class ComposeInPlaceActivities:
    def __init__(self, hosts: DockerHosts):
        self._hosts = hosts

    @activity.defn(name="roll_out_compose")
    def roll_out(self, request: ComposeRollOutInput) -> RollOutResult:
        t = request.target
        client = self._hosts.client(t.host)
        with docker_errors(cs.where(t)):
            found = cs.service_containers(client, t)
            if request.kind == "Undo":
                config = self._previous(request, found)
            elif request.kind == "Restart":
                if not found:
                    raise invalid(f"{cs.where(t)}: no container to restart")
                config = {**newest(found).config()}
                config["labels"] = {**config["labels"], "dev.durable-rollouts.restarted-at": request.restarted_at}
            else:
                config = cs.wanted(t, request.image)
            return self.converge(client, request, config, found, proxy_of(self._hosts, t))

    def _previous(self, request: ComposeRollOutInput, found: list[Container]) -> dict:
        """What the newest containers replaced (their label); refused when nothing records it."""
        t = request.target
        for container in sorted(found, key=lambda c: -c.revision):
            if cs.PREVIOUS in container.labels:
                if request.to_revision and request.to_revision != container.revision - 1:
                    raise invalid(f"{cs.where(t)}: only the configuration before the current one is kept "
                                  f"(revision {container.revision - 1}), not revision {request.to_revision}")
                return json.loads(container.labels[cs.PREVIOUS])
        raise invalid(f"{cs.where(t)}: no earlier configuration recorded on its containers")

    def converge(self, client, request: ComposeRollOutInput, config: dict, found: list[Container],
                 proxy=None) -> RollOutResult:
        """Replace the service's containers by `config`'s; with a proxy, each new one joins the backend when ready
        and each old one is drained out of it before it stops."""
        t = request.target
        adopt(proxy, t, found)
        replicas, want = t.replicas(), cs.config_hash(config)
        surge = count(request.max_surge if request.max_surge is not None else "25%", replicas, True)
        unavailable = count(request.max_unavailable, replicas, False)
        if surge == 0 and unavailable == 0:
            surge = 1
        old_found = [c for c in found if own_hash(c) != want]
        new_found = [c for c in found if own_hash(c) == want]
        previous = newest(old_found).config() if old_found else None
        revision = newest(new_found).revision if new_found else max((c.revision for c in found), default=0) + 1
        previous_image = newest(old_found).image if old_found else config["image"]
        previous_revision = newest(old_found).revision if old_found else revision
        name = f"compose:{t.host}/{t.project}/{t.service}:{want[:12]}"
        started = wait_started(name)
        while True:
            everything = cs.service_containers(client, t)
            new = [c for c in everything if own_hash(c) == want]
            old = [c for c in everything if own_hash(c) != want]
            ready_new = [c for c in new if c.ready(t.ready_after_seconds)]
            ready_old = [c for c in old if c.ready(t.ready_after_seconds)]
            if proxy is not None and serve_ready(proxy, t, everything, proxy.servers(t.proxy.backend), 1):
                continue
            if len(new) == len(ready_new) == replicas and not old:
                return RollOutResult(previous_image=previous_image, previous_revision=previous_revision,
                                     revision=revision, replicas=replicas, image=config["image"])
            for container in new:
                if container.attrs["State"].get("Status") == "created":  # made by a killed attempt, not started
                    client.api.start(container.id)
                elif container.attrs["State"].get("Status") == "exited" and config["restart"] in ("no", ""):
                    raise stopped(t, container)  # nothing restarts it: waiting out the deadline shows nothing more
            acted = False
            if len(new) > replicas:  # someone scaled it, or two attempts raced: the surplus goes, unready first
                cs.remove(client, t, sorted(new, key=lambda c: c.ready(t.ready_after_seconds))[0], proxy)
                acted = True
            elif old and (request.kind == "Recreate" or len(ready_new) + len(ready_old) - (
                    1 if (victim := _victim(old, t)) in ready_old else 0) >= replicas - unavailable):
                cs.remove(client, t, old[0] if request.kind == "Recreate" else victim, proxy)
                acted = True
            elif len(new) < replicas and len(new) + len(old) < replicas + surge and not (
                    request.kind == "Recreate" and old):
                number = max((c.number for c in everything), default=0) + 1
                cs.create(client, t, config, number, request.rollout_id, previous, revision)
                acted = True
            if acted:
                continue
            waited = time.time() - started
            if waited > request.progress_deadline_seconds:
                raise ApplicationError(
                    f"{cs.where(t)}: {len(ready_new)}/{replicas} new containers ready after {int(waited)} s "
                    f"(progressDeadlineSeconds {request.progress_deadline_seconds}): {state(new)}",
                    type="ProgressDeadlineExceeded", non_retryable=True)
            still_waiting(name, started, cs.where(t))
            time.sleep(0.5)

    @activity.defn(name="undo_compose")
    def undo(self, request: ComposeRollOutInput) -> str:
        """Back to the configuration the newest containers replaced; the image that runs then."""
        return self.roll_out(request.model_copy(update={"kind": "Undo", "to_revision": 0})).image


def own_hash(container: Container) -> str:
    """The SHA-256 of the configuration a container was made from (ours: its label; Compose's: read back)."""
    return container.hash if cs.CONFIG in container.labels else cs.config_hash(container.config())


def newest(found: list[Container]) -> Container:
    return max(found, key=lambda c: (c.revision, c.number))


def _victim(old: list[Container], t) -> Container:
    """The old container to go next: one not ready first, else the lowest number."""
    return sorted(old, key=lambda c: (c.ready(t.ready_after_seconds), c.number))[0]


def state(found: list[Container]) -> str:
    """Each container's name and state, with its last health check's output: what a person needs to see."""
    parts = []
    for c in found:
        log = ((c.attrs["State"].get("Health") or {}).get("Log") or [{}])[-1].get("Output", "").strip()[:120]
        parts.append(f"{c.name} {c.attrs['State'].get('Status')}/{c.health}" + (f" ({log})" if log else ""))
    return ", ".join(parts) or "none made"


def stopped(t, container: Container) -> ApplicationError:
    code = container.attrs["State"].get("ExitCode")
    return ApplicationError(f"{cs.where(t)}: {container.name} exited with code {code} and does not restart",
                            type="ProgressDeadlineExceeded", non_retryable=True)
