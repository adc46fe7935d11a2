"""`ObserveTarget` on a Compose host: what the service runs now, read from the engine — its containers
(by label), the image and image digest they run, and their health."""

from __future__ import annotations

from temporalio import activity

from activities.docker import DockerHosts, docker_errors
from activities.targets.compose import containers as cs
from activities.targets.compose.allowed import engine_for
from activities.targets.compose.inplace import newest, own_hash
from models.compose import ComposeHostTarget
from models.targets import TargetObservation


class ComposeObserveActivities:
    def __init__(self, hosts: DockerHosts):
        self._hosts = hosts

    @activity.defn(name="observe_compose_target")
    def observe(self, target: ComposeHostTarget) -> TargetObservation:
        client = engine_for(self._hosts, target)
        with docker_errors(cs.where(target)):
            found = cs.service_containers(client, target)
            if not found:
                return TargetObservation(target=target.describe(), version="", ready=False, detail="no container")
            current = newest(found)
            digests = client.api.inspect_image(current.attrs["Image"]).get("RepoDigests") or []
        same = [c for c in found if own_hash(c) == own_hash(current)]
        ready = [c for c in same if c.ready(target.ready_after_seconds)]
        others = len(found) - len(same)
        settled = len(ready) == len(same) == target.replicas() and not others
        detail = (f"{len(ready)}/{target.replicas()} containers ready on {current.image}"
                  + (f" ({digests[0]})" if digests else f" (image {current.attrs['Image'][:19]})")
                  + (f", {others} of another configuration" if others else ""))
        return TargetObservation(target=target.describe(), version=current.image, ready=settled, detail=detail,
                                 instances=len([c for c in same if c.running]), revision=str(current.revision))
