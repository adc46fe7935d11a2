"""The ECS delivery target: an ECS service's task sets behind an ALB. `activities` is its record's factory
(models/ecs.py): the worker calls it and serves what it returns on the target's family (`aws`); the AWS
clients come from boto3's default chain, the worker's own configuration."""

from __future__ import annotations

from typing import Any


def activities(clients: Any, http: Any) -> list:
    """Every ECS activity, bound to one `AwsClients` (the worker's Kubernetes `clients` and `http` are not
    used here)."""
    from activities.aws import AwsClients
    from activities.targets.ecs.bluegreen import EcsBlueGreenActivities
    from activities.targets.ecs.canary import EcsCanaryActivities
    from activities.targets.ecs.inplace import EcsInPlaceActivities
    from activities.targets.ecs.observe import EcsObserveActivities
    from activities.targets.ecs.window import EcsWindowActivities

    aws = AwsClients()
    canary, blue_green, in_place = EcsCanaryActivities(aws), EcsBlueGreenActivities(aws), EcsInPlaceActivities(aws)
    window = EcsWindowActivities(aws)
    observe = EcsObserveActivities(aws)
    return [observe.observe, observe.target_group, canary.prepare_canary, canary.set_routes, canary.promote_canary,
            canary.abort_canary, blue_green.prepare_blue_green, blue_green.scale_preview, blue_green.shift_traffic,
            blue_green.switch_active, blue_green.complete_blue_green, blue_green.abort_blue_green,
            in_place.roll_out, in_place.undo, window.keep_warm, window.switch_to_warm, window.close_window]
