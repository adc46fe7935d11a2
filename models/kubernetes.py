"""Inputs and results of the Kubernetes target's activities (wire formats, kept apart from the spec; the
target's block of the spec, `KubernetesTarget`, is in models/targets.py)."""

from __future__ import annotations

from typing import Literal

# The results every target shares (models/delivery.py), here too for the Kubernetes activities' imports.
from models.delivery import (  # noqa: F401
    BlueGreenPrepared,
    PrepareCanaryResult,
    RollOutResult,
    WarmRevision,
    WeightResult,
)
from models.routing import RouteState, SetCanaryScale, TrafficRouting
from models.specbase import Message
from models.targets import KubernetesTarget


class PrepareCanaryInput(Message):
    rollout_id: str
    target: KubernetesTarget
    image: str
    stable_service: str
    canary_service: str
    progress_deadline_seconds: int
    traffic_routing: TrafficRouting | None = None  # None: replicas


class SetWeightInput(Message):
    rollout_id: str
    target: KubernetesTarget
    router: str = ""  # older inputs named the router; it is chosen from traffic_routing now
    weight: int
    step: int
    total_replicas: int
    progress_deadline_seconds: int
    # The whole routing the step wants, and the canary's scale (older inputs: None for the replica ratio).
    traffic_routing: TrafficRouting | None = None
    stable_service: str = ""
    canary_service: str = ""
    routes: RouteState | None = None
    canary_scale: SetCanaryScale | None = None
    dynamic_stable_scale: bool = False


class FinishInput(Message):
    """Promotion (stable takes the new image) or abort (stable back to full size, canary to zero)."""

    rollout_id: str
    target: KubernetesTarget
    container: str
    image: str
    total_replicas: int
    progress_deadline_seconds: int
    traffic_routing: TrafficRouting | None = None
    stable_service: str = ""
    canary_service: str = ""


class RollOutInput(Message):
    """Put `image` on the Deployment with its own update strategy and wait until it is settled."""

    rollout_id: str
    target: KubernetesTarget
    image: str
    kind: Literal["RollingUpdate", "Recreate", "Undo", "Restart"]  # Undo: to `to_revision`; Restart: same template, new pods
    max_surge: int | str | None = None
    max_unavailable: int | str | None = None
    progress_deadline_seconds: int
    to_revision: int = 0  # Undo: 0 is the revision before the current one
    restarted_at: str = ""  # Restart: the workflow's time, so a retried attempt sets the same value


class UndoInput(Message):
    """Back to the revision the Deployment was on before this rollout run (kubectl rollout undo)."""

    rollout_id: str
    target: KubernetesTarget
    progress_deadline_seconds: int


class BlueGreenInput(Message):
    """What every blue-green activity is given; the fields after `progress_deadline_seconds` are filled
    in from the prepare step's result. Three activities take one field more (the models below); older
    inputs carried all three fields in this one model, and still read as any of them."""

    rollout_id: str
    target: KubernetesTarget
    image: str
    active_service: str
    preview_service: str
    progress_deadline_seconds: int
    total_replicas: int = 0
    stable_hash: str = ""
    container: str = ""
    traffic_routing: TrafficRouting | None = None  # gradual shift: active = stable side, preview = canary side


class ScalePreviewInput(BlueGreenInput):
    replicas: int = 0


class SwitchActiveInput(BlueGreenInput):
    to: Literal["preview", "stable"]  # which side the active Service selects


class ShiftTrafficInput(BlueGreenInput):
    weight: int = 0  # the preview's share


class WindowInput(Message):
    """Rollback window activities: keep earlier revisions of the target warm, switch the Service to one."""

    rollout_id: str
    target: KubernetesTarget
    service: str
    revisions: int = 1
    revision: int = 0  # switch_to_warm: which warm revision
    progress_deadline_seconds: int


class WorkloadInput(Message):
    """What every StatefulSet and DaemonSet activity is given. `updated`: how many ordinals (the highest) or
    nodes (the first in order) should run the new revision once the call returns; `stable_image`: what
    prepare found, to go back to."""

    rollout_id: str
    target: KubernetesTarget  # its statefulSet or daemonSet
    image: str
    progress_deadline_seconds: int
    hold: str = ""  # who holds the workload: the rollout and its first run (a later run of the same ID is another)
    updated: int = 0  # as the workflow counted them; the activity counts again from `weight` and the live size
    weight: int = 0  # the step's setWeight
    stable_image: str = ""
    container: str = ""
