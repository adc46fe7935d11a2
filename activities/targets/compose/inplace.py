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

import contextlib
import time
from collections.abc import Iterator

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.docker import DockerHosts, docker_errors, invalid
from activities.targets.compose import containers as cs
from activities.targets.compose import lock
from activities.targets.compose.allowed import check_networks, engine_for, proxy_for
from activities.targets.compose.backend import adopt, serve_ready
from activities.targets.compose.containers import Container
from activities.waiting import still_waiting, wait_started
from models.compose import ComposeRollOutInput
from models.delivery import RollOutResult, surge_and_unavailable


class ComposeInPlaceActivities:
    def __init__(self, hosts: DockerHosts):
        self._hosts = hosts

    @activity.defn(name="roll_out_compose")
    def roll_out(self, request: ComposeRollOutInput) -> RollOutResult:
        t = request.target
        client, proxy = engine_for(self._hosts, t), proxy_for(self._hosts, t)
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
            if request.kind in ("Undo", "Restart"):  # networks read back, not the document's: asked again
                check_networks(self._hosts, t, client, [(name, None, False) for name in config["networks"]])
            with holding(client, t, request.rollout_id, config["image"]):
                result = self.converge(client, request, config, found, proxy)
            lock.release(client, t, request.rollout_id)
            return result

    def _previous(self, request: ComposeRollOutInput, found: list[Container]) -> dict:
        """What the newest containers replaced (their label); refused when nothing records it."""
        t = request.target
        for container in sorted(found, key=lambda c: -c.revision):
            if container.labels.get(cs.PREVIOUS, "null") != "null":
                if request.to_revision and request.to_revision != container.revision - 1:
                    raise invalid(f"{cs.where(t)}: only the configuration before the current one is kept "
                                  f"(revision {container.revision - 1}), not revision {request.to_revision}")
                return cs.read_label(container, cs.PREVIOUS)
        raise invalid(f"{cs.where(t)}: no earlier configuration recorded on its containers")

    def converge(self, client, request: ComposeRollOutInput, config: dict, found: list[Container],
                 proxy=None) -> RollOutResult:
        """Replace the service's containers by `config`'s; with a proxy, each new one joins the backend when ready
        and each old one is drained out of it before it stops."""
        t = request.target
        adopt(proxy, t, found)
        replicas, want = t.replicas(), cs.config_hash(config)
        surge, unavailable = surge_and_unavailable(request.max_surge, request.max_unavailable, replicas)
        old_found = [c for c in found if own_hash(c) != want]
        new_found = [c for c in found if own_hash(c) == want]
        one_side(t, old_found)
        previous = newest(old_found).config() if old_found else None
        revision = newest(new_found).revision if new_found else max((c.revision for c in found), default=0) + 1
        previous_image = newest(old_found).image if old_found else config["image"]
        previous_revision = newest(old_found).revision if old_found else revision
        name = f"compose:{t.host}/{t.project}/{t.service}:{want[:12]}"
        started, ready_before = wait_started(name), -1  # the deadline counts from the last progress
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
            tend(client, t, config, new)
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
            if acted or len(ready_new) > ready_before:
                started, ready_before = time.time(), len(ready_new)
                if acted:
                    continue
            late(request, started, f"{len(ready_new)}/{replicas} new containers ready", new)
            still_waiting(name, started, cs.where(t))
            time.sleep(0.5)

    @activity.defn(name="undo_compose")
    def undo(self, request: ComposeRollOutInput) -> str:
        """Back to the configuration the newest containers replaced; the image that runs then."""
        return self.roll_out(request.model_copy(update={"kind": "Undo", "to_revision": 0})).image


@contextlib.contextmanager
def holding(client, t, rollout_id: str, image: str) -> Iterator[None]:
    """The service held for the rollout while the block changes it; released again when the block refuses
    (InvalidTarget: the workflow undoes nothing then), kept when it fails otherwise (an undo follows)."""
    lock.hold(client, t, rollout_id, image)
    try:
        yield
    except ApplicationError as error:
        if error.type == "InvalidTarget":
            lock.release(client, t, rollout_id)
        raise


def one_side(t, others: list[Container]) -> None:
    """The containers a rollout replaces are of one configuration: more means another rollout's candidates
    were left (its abort or undo did not finish), and guessing which side serves would remove production."""
    configs = {}
    for container in others:
        configs.setdefault(own_hash(container), []).append(container.name)
    if len(configs) > 1:
        found = "; ".join(", ".join(names) for names in configs.values())
        raise invalid(f"{cs.where(t)}: its containers are of {len(configs)} configurations ({found}): finish or undo "
                      "the rollout that left them, or remove the ones that should not serve")


def tend(client, t, config: dict, new: list[Container]) -> None:
    """The new containers a killed attempt made and did not start, started (their networks first); one that
    exited and that nothing restarts fails the wait at once (waiting out the deadline shows nothing more)."""
    for container in new:
        status = container.attrs["State"].get("Status")
        if status == "created":
            cs.start(client, container, config)
        elif status == "exited" and config["restart"] in ("no", ""):
            raise stopped(t, container)


def late(request, progressed: float, what: str, new: list[Container]) -> None:
    """The progress deadline: no progress for progressDeadlineSeconds fails the wait."""
    waited = time.time() - progressed
    if waited > request.progress_deadline_seconds:
        raise ApplicationError(f"{cs.where(request.target)}: {what}, no progress for {int(waited)} s "
                               f"(progressDeadlineSeconds {request.progress_deadline_seconds}): {state(new)}",
                               type="ProgressDeadlineExceeded", non_retryable=True)


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
