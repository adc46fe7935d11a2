"""Replica-ratio router: no mesh. The stable Service selects both versions' pods, so the canary's share
of traffic is its share of ready pods. A weight w of N replicas runs ceil(N*w/100) canary pods and the
rest stable, always adding capacity before removing it (canary up before stable down, and the reverse
when the weight goes down)."""

from __future__ import annotations

import math

from kubernetes import client
from temporalio.exceptions import ApplicationError

from activities.kube import STRATEGIC_MERGE, KubeClients, api_errors, wait_settled
from models.kubernetes import SetWeightInput, WeightResult
from models.names import ANNOTATION_STEP, ANNOTATION_WEIGHT, canary_deployment_name


def replica_split(total: int, weight: int) -> tuple[int, int]:
    """(canary, stable) replica counts for a weight in percent."""
    canary = min(total, math.ceil(total * weight / 100)) if weight > 0 else 0
    return canary, total - canary


def scale(apps: client.AppsV1Api, namespace: str, name: str, replicas: int, annotations: dict[str, str]) -> bool:
    """Set replicas (and annotations) unless already so; optimistic on resourceVersion. True if patched."""
    what = f"deployment {namespace}/{name}"
    with api_errors(what):
        current = apps.read_namespaced_deployment(name, namespace)
    present = current.metadata.annotations or {}
    if current.spec.replicas == replicas and all(present.get(k) == v for k, v in annotations.items()):
        return False
    body = {
        "metadata": {"resourceVersion": current.metadata.resource_version, "annotations": annotations},
        "spec": {"replicas": replicas},
    }
    with api_errors(what):
        apps.patch_namespaced_deployment(name, namespace, body, _content_type=STRATEGIC_MERGE)
    return True


def check_not_stale(apps: client.AppsV1Api, namespace: str, canary: str, step: int) -> client.V1Deployment:
    """The canary Deployment, unless a later step was already applied (a late attempt of an earlier
    step must never move traffic back)."""
    with api_errors(f"deployment {namespace}/{canary}"):
        before = apps.read_namespaced_deployment(canary, namespace)
    applied_step = int((before.metadata.annotations or {}).get(ANNOTATION_STEP, "-1"))
    if applied_step > step:
        raise ApplicationError(
            f"deployment {namespace}/{canary} is already at step {applied_step}; step {step} is stale",
            type="StaleStep",
            non_retryable=True,
        )
    return before


class ReplicaRatioRouter:
    def __init__(self, clients: KubeClients):
        self._clients = clients

    def set_weight(self, request: SetWeightInput) -> WeightResult:
        target = request.target
        apps = self._clients.apps(target.context)
        ns, stable = target.namespace, target.deployment
        canary = canary_deployment_name(stable)
        canary_replicas, stable_replicas = replica_split(request.total_replicas, request.weight)
        marks = {ANNOTATION_WEIGHT: str(request.weight), ANNOTATION_STEP: str(request.step)}
        deadline = request.progress_deadline_seconds

        # Capacity first: grow whichever side gains pods, wait for it, then shrink the other.
        order = [(canary, canary_replicas, marks), (stable, stable_replicas, {})]
        before = check_not_stale(apps, ns, canary, request.step)
        if (before.spec.replicas or 0) > canary_replicas:
            order.reverse()
        changed = False
        for name, replicas, marks_to_set in order:
            changed |= scale(apps, ns, name, replicas, marks_to_set)
            wait_settled(apps, ns, name, deadline)
        return WeightResult(
            weight=request.weight,
            canary_replicas=canary_replicas,
            stable_replicas=stable_replicas,
            actual_weight=round(100.0 * canary_replicas / max(1, request.total_replicas), 2),
            changed=changed,
        )
