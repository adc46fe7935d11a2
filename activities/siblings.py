"""What the canary and blue-green activities share: checking the target, holding the stable Deployment
while a rollout changes traffic around it, a sibling Deployment (`web-canary`, `web-preview`) of
the new version with its Service, owned by one workflow run, and pinning a Service to one
Deployment's current pods (`pod-template-hash`) while a sibling with the same labels runs.

Every function is idempotent: it reads first and changes only what differs.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass

from kubernetes import client
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.kube import (
    STRATEGIC_MERGE,
    api_errors,
    create_if_absent,
    ensure_not_busy,
    read_optional,
    replica_set_of_revision,
    wait_settled,
)
from activities.routing.replicas import scale
from models.names import (
    ANNOTATION_ORIGINAL_SELECTOR,
    ANNOTATION_REVISION,
    ANNOTATION_ROLLOUT_ID,
    ANNOTATION_RUN_ID,
    ANNOTATION_STABLE_REPLICAS,
    ANNOTATION_STEP,
    ANNOTATION_STRATEGY,
    ANNOTATION_WEIGHT,
    LABEL_POD_TEMPLATE_HASH,
    LABEL_ROLE,
)
from models.spec import KubernetesTarget


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


def original_selector(service: client.V1Service) -> dict[str, str]:
    """The Service's selector before a rollout pinned it (see `set_selector`)."""
    saved = (service.metadata.annotations or {}).get(ANNOTATION_ORIGINAL_SELECTOR)
    return json.loads(saved) if saved else dict(service.spec.selector or {})


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


def ensure_role_service(core: client.CoreV1Api, stable: client.V1Service, name: str, role: str) -> None:
    """A Service selecting only the `role` pods (created with the stable Service's ports if absent)."""
    ns = stable.metadata.namespace
    selector = {**original_selector(stable), LABEL_ROLE: role}
    with api_errors(f"service {ns}/{name}"):
        existing = read_optional(core.read_namespaced_service, name, ns)
        if existing is None:
            ports = [
                client.V1ServicePort(name=p.name, port=p.port, target_port=p.target_port, protocol=p.protocol)
                for p in stable.spec.ports
            ]
            body = client.V1Service(
                metadata=client.V1ObjectMeta(name=name, labels={LABEL_ROLE: role}),
                spec=client.V1ServiceSpec(selector=selector, ports=ports),
            )
            create_if_absent(core.create_namespaced_service, ns, body)
        elif existing.spec.selector != selector:
            existing.spec.selector = selector
            core.replace_namespaced_service(name, ns, existing)  # resourceVersion-checked


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


def set_selector(core: client.CoreV1Api, service: client.V1Service, selector: dict[str, str]) -> bool:
    """Replace the Service's selector (resourceVersion-checked), remembering its own selector the first
    time; False when it is already so."""
    annotations = dict(service.metadata.annotations or {})
    if service.spec.selector == selector and ANNOTATION_ORIGINAL_SELECTOR in annotations:
        return False
    annotations.setdefault(ANNOTATION_ORIGINAL_SELECTOR, json.dumps(service.spec.selector or {}, sort_keys=True))
    service.metadata.annotations = annotations
    service.spec.selector = selector
    ns, name = service.metadata.namespace, service.metadata.name
    with api_errors(f"service {ns}/{name}"):
        core.replace_namespaced_service(name, ns, service)
    return True


def restore_selector(core: client.CoreV1Api, service: client.V1Service) -> bool:
    """Put back the Service's own selector and forget it; False when there is nothing to restore."""
    annotations = dict(service.metadata.annotations or {})
    saved = annotations.pop(ANNOTATION_ORIGINAL_SELECTOR, None)
    if saved is None:
        return False
    service.spec.selector = json.loads(saved)
    service.metadata.annotations = annotations or None
    ns, name = service.metadata.namespace, service.metadata.name
    with api_errors(f"service {ns}/{name}"):
        core.replace_namespaced_service(name, ns, service)
    return True


def current_pod_template_hash(apps: client.AppsV1Api, t: KubernetesTarget, deadline_seconds: int) -> str:
    """The `pod-template-hash` of the Deployment's current pods (once it is settled)."""
    stable = wait_settled(apps, t.namespace, t.deployment, deadline_seconds)
    revision = int((stable.metadata.annotations or {}).get(ANNOTATION_REVISION, "0"))
    replica_set = replica_set_of_revision(apps, stable, revision)
    if replica_set is None or LABEL_POD_TEMPLATE_HASH not in (replica_set.metadata.labels or {}):
        raise ApplicationError(f"deployment {t.namespace}/{t.deployment}: no ReplicaSet for revision {revision}",
                               type="KubernetesNotReady")
    return replica_set.metadata.labels[LABEL_POD_TEMPLATE_HASH]


def pin_to_current_pods(apps: client.AppsV1Api, core: client.CoreV1Api, target: Target, t: KubernetesTarget,
                        deadline_seconds: int) -> None:
    """Make the Service select only the Deployment's current pods (not a sibling's with the same labels)."""
    pod_hash = current_pod_template_hash(apps, t, deadline_seconds)
    set_selector(core, target.service, {**original_selector(target.service), LABEL_POD_TEMPLATE_HASH: pod_hash})


def unpin(core: client.CoreV1Api, namespace: str, service: str) -> None:
    with api_errors(f"service {namespace}/{service}"):
        restore_selector(core, core.read_namespaced_service(service, namespace))


def runs(deployment: client.V1Deployment, container: str, image: str, replicas: int) -> bool:
    """The Deployment's template already has `image` in `container`, at `replicas`."""
    running = next((c.image for c in deployment.spec.template.spec.containers if c.name == container), None)
    return running == image and deployment.spec.replicas == replicas


def put_image(apps: client.AppsV1Api, t: KubernetesTarget, container: str, image: str, replicas: int,
              deadline_seconds: int) -> None:
    """The target Deployment runs `image` in `container` at `replicas` (patched unless already so), settled."""
    what = f"deployment {t.namespace}/{t.deployment}"
    with api_errors(what):
        current = apps.read_namespaced_deployment(t.deployment, t.namespace)
    if not runs(current, container, image, replicas):
        body = {"spec": {"replicas": replicas,
                         "template": {"spec": {"containers": [{"name": container, "image": image}]}}}}
        with api_errors(what):
            apps.patch_namespaced_deployment(t.deployment, t.namespace, body, _content_type=STRATEGIC_MERGE)
    wait_settled(apps, t.namespace, t.deployment, deadline_seconds)
