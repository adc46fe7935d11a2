"""Kubernetes workloads beside the Deployment: what a StatefulSet rollout takes, and its activities' inputs.

A StatefulSet's canary is its own rolling update held by `updateStrategy.rollingUpdate.partition`: the
ordinals at or above the partition run the new revision (the controller updates them highest first),
the others the current one. A step's `setWeight` is the share of ordinals updated (rounded up, at least one
for a weight above 0); the pods of both revisions sit behind the StatefulSet's one Service, so the share of
traffic is the share of ready pods — there is no second workload and no router. `OnDelete` StatefulSets
are moved by deleting the pods of the ordinals to update, highest first, one at a time. Volumes (the
claims of `volumeClaimTemplates`) are never deleted: a pod that comes back mounts its own claim.

Not taken for a StatefulSet (refused at validation, naming the field): blueGreen and abTest (no second
workload), rollingUpdate and recreate (a canary to 100 is the rolling update, gated), a traffic router,
setCanaryScale, header and mirror routes, dynamicStableScale, a rollbackWindow, analysis args read from
pod-template hashes (a StatefulSet's pods carry `controller-revision-hash` instead)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from models.delivery import Capabilities


class StatefulSetRules:
    CAPABILITIES: ClassVar[Capabilities] = Capabilities(
        weights=True, header_routes=False, mirrors=False, instant_switch=False, warm_rollback_window=False,
        in_place_rolling=False)

    @staticmethod
    def spec_problem(spec: Any) -> str:
        st = spec.strategy
        if st.name != "canary":
            return (f"@strategy.{st.name}: a StatefulSet rolls as a canary by its partition "
                    "(strategy.canary; setWeight 100 completes the rolling update)")
        canary = st.canary
        if canary.traffic_routing.router != "replicas":
            return (f"@strategy.canary.trafficRouting.{canary.traffic_routing.router}: a StatefulSet's pods share one "
                    "Service; its share of traffic is its share of updated ordinals (no router)")
        for field in ("stable_service", "canary_service"):
            if getattr(canary, field) is not None:
                name = "stableService" if field == "stable_service" else "canaryService"
                return f"@strategy.canary.{name}: a StatefulSet's pods share its one Service; leave it out"
        if canary.dynamic_stable_scale:
            return "@strategy.canary.dynamicStableScale: a StatefulSet keeps its replicas; ordinals are updated in place"
        for index, step in enumerate(canary.steps):
            if step.kind in ("setCanaryScale", "setHeaderRoute", "setMirrorRoute"):
                return f"@strategy.canary.steps[{index}].{step.kind}: a StatefulSet's canary is its partition (setWeight)"
        if spec.rollback_window is not None:
            return "@rollbackWindow: a StatefulSet keeps no earlier revision warm (abort and undo restore it in place)"
        for path, step in spec.analysis_steps():
            for index, arg in enumerate(step.args):
                if arg.value_from is not None:
                    return f"@{path}.args[{index}].valueFrom: a StatefulSet's pods have no pod-template hash"
        return ""


STATEFUL_SET = StatefulSetRules()


def updated_ordinals(weight: int, replicas: int) -> int:
    """How many ordinals (the highest) run the new revision at `weight` percent: rounded up, at least one
    above 0, all at 100."""
    if weight <= 0 or replicas <= 0:
        return 0
    return min(replicas, max(1, math.ceil(weight * replicas / 100)))
