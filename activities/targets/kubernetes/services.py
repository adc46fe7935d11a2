"""Services during a rollout: the role Service of a sibling (`web-canary`, `web-preview`), and pinning a
Service to one Deployment's current pods (`pod-template-hash`) while a sibling with the same labels
runs — its own selector kept in an annotation and put back at the end. Idempotent: read, then change
only what differs (resourceVersion-checked replaces)."""

from __future__ import annotations

import json

from kubernetes import client
from temporalio.exceptions import ApplicationError

from activities.targets.kubernetes.client import api_errors, create_if_absent, read_optional
from activities.targets.kubernetes.readiness import replica_set_of_revision, wait_settled
from models.kubernetes import KubernetesTarget
from models.names import ANNOTATION_ORIGINAL_SELECTOR, ANNOTATION_REVISION, LABEL_POD_TEMPLATE_HASH, LABEL_ROLE


def original_selector(service: client.V1Service) -> dict[str, str]:
    """The Service's selector before a rollout pinned it (see `set_selector`)."""
    saved = (service.metadata.annotations or {}).get(ANNOTATION_ORIGINAL_SELECTOR)
    return json.loads(saved) if saved else dict(service.spec.selector or {})


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


def pin_to_current_pods(apps: client.AppsV1Api, core: client.CoreV1Api, service: client.V1Service, t: KubernetesTarget,
                        deadline_seconds: int) -> None:
    """Make the Service select only the Deployment's current pods (not a sibling's with the same labels)."""
    pod_hash = current_pod_template_hash(apps, t, deadline_seconds)
    set_selector(core, service, {**original_selector(service), LABEL_POD_TEMPLATE_HASH: pod_hash})


def unpin(core: client.CoreV1Api, namespace: str, service: str) -> None:
    with api_errors(f"service {namespace}/{service}"):
        restore_selector(core, core.read_namespaced_service(service, namespace))
