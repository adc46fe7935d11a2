"""Deployments during a rollout: scaling (replicas and step marks, resourceVersion-checked), a sibling
Deployment of the new version (`web-canary`, `web-preview`) owned by one workflow run, the target
taking a new image, and the pod template of an earlier revision.

Every function is idempotent: it reads first and changes only what differs.
"""

from __future__ import annotations

import copy
import time

from kubernetes import client
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.targets.kubernetes.client import STRATEGIC_MERGE, api_errors, create_if_absent, read_optional
from activities.targets.kubernetes.readiness import wait_settled
from models.kubernetes import KubernetesTarget
from models.names import ANNOTATION_ROLLOUT_ID, ANNOTATION_RUN_ID, ANNOTATION_STEP, ANNOTATION_WEIGHT, LABEL_ROLE


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


def ensure_sibling(apps: client.AppsV1Api, stable: client.V1Deployment, name: str, role: str, image: str,
                   replicas: int, rollout_id: str, progress_deadline_seconds: int) -> None:
    """The new version's Deployment beside the stable one (pods labelled `role`), owned by this workflow run.

    One left at zero by an earlier run is replaced; one still running pods of another run is refused.
    """
    ns = stable.metadata.namespace
    template = copy.deepcopy(stable.spec.template)
    template.metadata.labels = {**(template.metadata.labels or {}), LABEL_ROLE: role}
    template.spec.containers[0].image = image
    selector = {**(stable.spec.selector.match_labels or {}), LABEL_ROLE: role}
    annotations = {
        ANNOTATION_ROLLOUT_ID: rollout_id,
        ANNOTATION_RUN_ID: activity.info().workflow_run_id,
        ANNOTATION_STEP: "-1",
        ANNOTATION_WEIGHT: "0",
    }
    body = client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels={LABEL_ROLE: role}, annotations=annotations),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=selector),
            template=template,
            progress_deadline_seconds=progress_deadline_seconds,
        ),
    )
    with api_errors(f"deployment {ns}/{name}"):
        existing = read_optional(apps.read_namespaced_deployment, name, ns)
        if existing is None:
            create_if_absent(apps.create_namespaced_deployment, ns, body)
            return
        marks = existing.metadata.annotations or {}
        if marks.get(ANNOTATION_RUN_ID) == annotations[ANNOTATION_RUN_ID] and existing.metadata.deletion_timestamp is None:
            return  # created by an earlier attempt of this same run
        if (existing.spec.replicas or 0) > 0 and existing.metadata.deletion_timestamp is None:
            raise ApplicationError(
                f"deployment {ns}/{name} runs {existing.spec.replicas} {role} pods of "
                f"{marks.get(ANNOTATION_ROLLOUT_ID, 'another rollout')} (run {marks.get(ANNOTATION_RUN_ID, '?')}): "
                f"abort that rollout, or scale {name} to 0, before starting another",
                type="InvalidTarget",
                non_retryable=True,
            )
        # Left at zero by an earlier run: replace it, so nothing of that run (steps, template) carries over.
        if existing.metadata.deletion_timestamp is None:
            apps.delete_namespaced_deployment(name, ns, propagation_policy="Background")
        _wait_gone(apps, ns, name)
        create_if_absent(apps.create_namespaced_deployment, ns, body)


def remove_sibling(apps: client.AppsV1Api, namespace: str, name: str, progress_deadline_seconds: int) -> None:
    """Drain the sibling (scale to zero and wait), then delete its Deployment; its ReplicaSet goes with it."""
    try:
        scale(apps, namespace, name, 0, {ANNOTATION_WEIGHT: "0"})
    except ApplicationError as error:
        if error.type == "NotFound":  # removed by an earlier attempt
            return
        raise
    wait_settled(apps, namespace, name, progress_deadline_seconds)
    with api_errors(f"deployment {namespace}/{name}"):
        try:
            apps.delete_namespaced_deployment(name, namespace, propagation_policy="Background")
        except client.ApiException as error:
            if error.status != 404:
                raise


def _wait_gone(apps: client.AppsV1Api, namespace: str, name: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while read_optional(apps.read_namespaced_deployment, name, namespace) is not None:
        if time.monotonic() > deadline:
            raise ApplicationError(f"deployment {namespace}/{name} still being deleted after {timeout}s")
        activity.heartbeat(f"waiting for {namespace}/{name} to be deleted")
        time.sleep(0.25)


def runs(deployment: client.V1Deployment, container: str, image: str, replicas: int) -> bool:
    """The Deployment's template already has `image` in `container`, at `replicas`."""
    running = next((c.image for c in deployment.spec.template.spec.containers if c.name == container), None)
    return running == image and deployment.spec.replicas == replicas


def put_image(apps: client.AppsV1Api, t: KubernetesTarget, container: str, image: str, replicas: int,
              deadline_seconds: int) -> client.V1Deployment:
    """The target Deployment runs `image` in `container` at `replicas` (patched unless already so), settled."""
    what = f"deployment {t.namespace}/{t.deployment}"
    with api_errors(what):
        current = apps.read_namespaced_deployment(t.deployment, t.namespace)
    if not runs(current, container, image, replicas):
        body = {"spec": {"replicas": replicas,
                         "template": {"spec": {"containers": [{"name": container, "image": image}]}}}}
        with api_errors(what):
            apps.patch_namespaced_deployment(t.deployment, t.namespace, body, _content_type=STRATEGIC_MERGE)
    return wait_settled(apps, t.namespace, t.deployment, deadline_seconds)


def pod_template(apps: client.AppsV1Api, replica_set: client.V1ReplicaSet) -> dict:
    template = apps.api_client.sanitize_for_serialization(replica_set.spec.template)
    template["metadata"].get("labels", {}).pop("pod-template-hash", None)
    return template
