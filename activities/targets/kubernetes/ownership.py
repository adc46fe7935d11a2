"""Who may change a Deployment: the target checked before anything changes, and the hold a canary or
blue-green puts on its stable Deployment (its size and the rollout's ID, as annotations) so that no
other rollout changes it meanwhile. A crashed earlier run of the same rollout ID may resume."""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes import client
from temporalio.exceptions import ApplicationError

from activities.targets.kubernetes.client import STRATEGIC_MERGE, api_errors
from activities.targets.kubernetes.readiness import is_settled
from activities.targets.kubernetes.services import original_selector
from models.kubernetes import KubernetesTarget
from models.names import ANNOTATION_ROLLOUT_ID, ANNOTATION_STABLE_REPLICAS, ANNOTATION_STRATEGY


@dataclass
class Target:
    """The stable Deployment and the Service that selects its pods, checked."""

    stable: client.V1Deployment
    service: client.V1Service
    total_replicas: int

    @property
    def container(self) -> client.V1Container:
        return self.stable.spec.template.spec.containers[0]


def check_target(apps: client.AppsV1Api, core: client.CoreV1Api, t: KubernetesTarget, service_name: str,
                 rollout_id: str) -> Target:
    """The namespace, Deployment and Service exist, the Service selects the Deployment's pods, nobody
    else holds it; the stable size as first recorded (a retry sees it even after steps scaled stable down)."""
    ns = t.namespace
    with api_errors(f"namespace {ns}"):
        core.read_namespace(ns)
    with api_errors(f"deployment {ns}/{t.deployment}"):
        stable = apps.read_namespaced_deployment(t.deployment, ns)
    with api_errors(f"service {ns}/{service_name}"):
        service = core.read_namespaced_service(service_name, ns)
    pod_labels = stable.spec.template.metadata.labels or {}
    selector = original_selector(service)
    if not selector or any(pod_labels.get(k) != v for k, v in selector.items()):
        raise ApplicationError(
            f"service {ns}/{service_name} selector {selector} does not select the pods of "
            f"deployment {ns}/{t.deployment} (labels {pod_labels})",
            type="InvalidTarget",
            non_retryable=True,
        )
    ensure_not_busy(stable, rollout_id)
    total = int((stable.metadata.annotations or {}).get(ANNOTATION_STABLE_REPLICAS, stable.spec.replicas or 0))
    if total < 1:
        raise ApplicationError(
            f"deployment {ns}/{t.deployment} has 0 replicas: nothing to shift traffic from",
            type="InvalidTarget",
            non_retryable=True,
        )
    return Target(stable, service, total)


def ensure_not_busy(deployment: client.V1Deployment, rollout_id: str) -> None:
    """Refuse a Deployment that another rollout (another ID) is still changing, naming that rollout.

    A canary or blue-green holds its stable Deployment (the stable-size annotation) until it is promoted
    or aborted;
    a rolling update holds it until it is settled. A crashed earlier run of the *same* ID may resume.
    """
    marks = deployment.metadata.annotations or {}
    owner = marks.get(ANNOTATION_ROLLOUT_ID)
    if not owner or owner == rollout_id:
        return
    what = f"deployment {deployment.metadata.namespace}/{deployment.metadata.name}"
    if ANNOTATION_STABLE_REPLICAS in marks:
        busy = (f"{owner} holds it for a {marks.get(ANNOTATION_STRATEGY, 'canary')} (if that rollout is gone for good, remove the annotation "
                f"{ANNOTATION_STABLE_REPLICAS})")
    elif not is_settled(deployment):
        busy = f"{owner} is still rolling it out"
    else:
        return
    raise ApplicationError(f"{what}: {busy}; wait for it or abort it first", type="InvalidTarget", non_retryable=True)


def hold(apps: client.AppsV1Api, target: Target, rollout_id: str, strategy: str) -> None:
    """Mark the stable Deployment as held by this rollout (other rollouts are refused) with its size."""
    stable = target.stable
    marks = {
        ANNOTATION_STABLE_REPLICAS: str(target.total_replicas),
        ANNOTATION_ROLLOUT_ID: rollout_id,
        ANNOTATION_STRATEGY: strategy,
    }
    if any((stable.metadata.annotations or {}).get(k) != v for k, v in marks.items()):
        ns, name = stable.metadata.namespace, stable.metadata.name
        with api_errors(f"deployment {ns}/{name}"):
            apps.patch_namespaced_deployment(name, ns, {"metadata": {"annotations": marks}}, _content_type=STRATEGIC_MERGE)


def release(apps: client.AppsV1Api, t: KubernetesTarget) -> None:
    """Forget the hold (the rollout is promoted or aborted)."""
    with api_errors(f"deployment {t.namespace}/{t.deployment}"):
        stable = apps.read_namespaced_deployment(t.deployment, t.namespace)
        marks = stable.metadata.annotations or {}
        if ANNOTATION_STABLE_REPLICAS in marks or ANNOTATION_STRATEGY in marks:
            patch = {"metadata": {"annotations": {ANNOTATION_STABLE_REPLICAS: None, ANNOTATION_STRATEGY: None}}}
            apps.patch_namespaced_deployment(t.deployment, t.namespace, patch, _content_type=STRATEGIC_MERGE)
