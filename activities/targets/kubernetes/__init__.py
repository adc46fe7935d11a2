"""The Kubernetes delivery target: a Deployment, a StatefulSet or a DaemonSet in a cluster. `activities` is its record's factory
(models/targets.py): the worker hands it its clients and serves what it returns on the target's family."""

from __future__ import annotations

from typing import Any


def activities(clients: Any, http: Any) -> list:
    """Every Kubernetes activity, bound to the worker's `KubeClients` (`http` is not needed here)."""
    from activities.targets.kubernetes.bluegreen import BlueGreenActivities
    from activities.targets.kubernetes.canary import CanaryActivities
    from activities.targets.kubernetes.daemonset import DaemonSetActivities
    from activities.targets.kubernetes.observe import ObserveActivities
    from activities.targets.kubernetes.rolling import DeploymentActivities
    from activities.targets.kubernetes.statefulset import StatefulSetActivities
    from activities.targets.kubernetes.window import WindowActivities

    canary, deployment, blue_green = CanaryActivities(clients), DeploymentActivities(clients), BlueGreenActivities(clients)
    window, observe, sts = WindowActivities(clients), ObserveActivities(clients), StatefulSetActivities(clients)
    ds = DaemonSetActivities(clients)
    return [
        observe.observe_kubernetes_target, observe.pod_template_hash,
        window.keep_warm, window.switch_to_warm, window.close_window,
        blue_green.prepare_blue_green, blue_green.scale_preview, blue_green.shift_traffic, blue_green.switch_active,
        blue_green.complete_blue_green, blue_green.abort_blue_green,
        canary.prepare_canary, canary.set_canary_weight, canary.promote_canary, canary.abort_canary,
        deployment.roll_out_deployment, deployment.undo_deployment,
        sts.prepare_stateful_canary, sts.set_stateful_partition, sts.promote_stateful_canary, sts.abort_stateful_canary,
        ds.prepare_daemon_canary, ds.set_daemon_nodes, ds.promote_daemon_canary, ds.abort_daemon_canary,
    ]
