"""Kubernetes workloads beside the Deployment, rolled as a canary in place (no second workload, no router:
their pods share their own Service, so a step's share of traffic is its share of updated pods) — what a
spec may ask of them, and how many pods a weight moves.

A StatefulSet's canary is its own rolling update held by `updateStrategy.rollingUpdate.partition`: the
ordinals at or above the partition run the new revision (the controller updates them highest first), the
others the current one; `OnDelete` ones are moved by deleting pods, highest first, one at a time. A
DaemonSet's canary replaces the pods of its nodes in one order (`NodeOrder`), the engine driving it as
`OnDelete`. A step's `setWeight` is the share of ordinals or nodes updated (rounded up, at least one above
0). Volumes (the claims of `volumeClaimTemplates`) are never deleted: a pod that comes back mounts its own.

Not taken (refused at validation, naming the field): blueGreen and abTest, rollingUpdate and recreate (a
canary to 100 is the update, gated), a traffic router, the Services a Deployment's canary names,
setCanaryScale, header and mirror routes, dynamicStableScale, a rollbackWindow, analysis args read from
pod-template hashes (these pods carry `controller-revision-hash` instead). Activities:
activities/targets/kubernetes/statefulset.py and daemonset.py; the adapter: workflows/targets/inplace.py."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from pydantic import Field

from models.delivery import Capabilities
from models.specbase import SpecModel


class InPlaceRules:
    """A workload updated in place, step by step (its pods share one Service, no second workload): what it
    takes of a spec. `kind` names it, `moves` what a step moves, `by` how."""

    CAPABILITIES: ClassVar[Capabilities] = Capabilities(
        weights=True, header_routes=False, mirrors=False, instant_switch=False, warm_rollback_window=False,
        in_place_rolling=False)

    def __init__(self, kind: str, moves: str, by: str):
        self.kind, self.moves, self.by = kind, moves, by

    def spec_problem(self, spec: Any) -> str:
        st, kind = spec.strategy, self.kind
        if st.name != "canary":
            return (f"@strategy.{st.name}: a {kind} rolls as a canary {self.by} "
                    "(strategy.canary; setWeight 100 completes the update)")
        canary = st.canary
        if canary.traffic_routing.router != "replicas":
            return (f"@strategy.canary.trafficRouting.{canary.traffic_routing.router}: a {kind}'s pods share its "
                    f"Service; its share of traffic is its share of updated {self.moves} (no router)")
        for field in ("stable_service", "canary_service"):
            if getattr(canary, field) is not None:
                name = "stableService" if field == "stable_service" else "canaryService"
                return f"@strategy.canary.{name}: a {kind}'s pods share its Service; leave it out"
        if canary.dynamic_stable_scale:
            return f"@strategy.canary.dynamicStableScale: a {kind} keeps its pods; {self.moves} are updated in place"
        for index, step in enumerate(canary.steps):
            if step.kind in ("setCanaryScale", "setHeaderRoute", "setMirrorRoute"):
                return f"@strategy.canary.steps[{index}].{step.kind}: a {kind}'s canary is its updated {self.moves} " \
                       "(setWeight)"
        if spec.rollback_window is not None:
            return f"@rollbackWindow: a {kind} keeps no earlier revision warm (abort restores it in place)"
        for path, step in spec.analysis_steps():
            for index, arg in enumerate(step.args):
                if arg.value_from is not None:
                    return f"@{path}.args[{index}].valueFrom: a {kind}'s pods have no pod-template hash"
        return ""


STATEFUL_SET = InPlaceRules("StatefulSet", "ordinals", "by its partition")
DAEMON_SET = InPlaceRules("DaemonSet", "nodes", "node by node")


class NodeOrder(SpecModel):
    """A DaemonSet's nodes in the order a canary updates them: those already on the new revision, then those
    matching `first` (the canary nodes), then the rest, each group by name; at most `maxUnavailable` of its
    pods unavailable at once."""

    first: dict[str, str] = Field(default_factory=dict, description="labels of the nodes updated first")
    max_unavailable: int = Field(1, ge=1, le=1000, description="pods unavailable at once while a step replaces them")


def updated_ordinals(weight: int, replicas: int) -> int:
    """How many ordinals (the highest) or nodes (the first in order) run the new revision at `weight` percent:
    rounded up, at least one above 0, all at 100."""
    if weight <= 0 or replicas <= 0:
        return 0
    return min(replicas, max(1, math.ceil(weight * replicas / 100)))
