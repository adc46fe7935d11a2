"""The composeHost delivery target: a Compose project's service on a Docker host, driven through the Engine
API (the Docker SDK for Python). `activities` is its record's factory (models/compose.py): the worker
calls it and serves what it returns on the target's family (`docker`); the hosts come from the worker's
own configuration (activities/docker.py)."""

from __future__ import annotations

from typing import Any


def activities(clients: Any, http: Any) -> list:
    """Every Compose-host activity, bound to the worker's `DockerHosts` (its Kubernetes `clients` and `http`
    are not used here)."""
    from activities.docker import DockerHosts
    from activities.targets.compose.bluegreen import ComposeBlueGreenActivities
    from activities.targets.compose.canary import ComposeCanaryActivities
    from activities.targets.compose.inplace import ComposeInPlaceActivities
    from activities.targets.compose.observe import ComposeObserveActivities

    hosts = DockerHosts()
    in_place, observe, canary = ComposeInPlaceActivities(hosts), ComposeObserveActivities(hosts), ComposeCanaryActivities(hosts)
    blue_green = ComposeBlueGreenActivities(hosts)
    return [observe.observe, in_place.roll_out, in_place.undo, canary.prepare_canary, canary.set_routes,
            canary.promote_canary, canary.abort_canary, blue_green.prepare_blue_green, blue_green.scale_preview,
            blue_green.shift_traffic, blue_green.switch_active, blue_green.complete_blue_green,
            blue_green.abort_blue_green]
