"""Rollback window activities: after a Healthy rollout, earlier revisions of the target Deployment run
as warm copies (`<deployment>-warm-r<N>`, from the ReplicaSet templates the Deployment kept) whose pods
carry none of the Service's or the Deployment's selector labels — they serve nothing. An undo points
the Service at one warm copy in a single update (no pod starts), the Deployment is then put back on
that revision while nobody is routed to it, the Service's own selector restored and the copies removed.
"""

from __future__ import annotations

from kubernetes import client
from temporalio import activity

from activities.targets.kubernetes.client import KubeClients, api_errors, create_if_absent, invalid
from activities.targets.kubernetes.deployments import pod_template, remove_sibling
from activities.targets.kubernetes.readiness import revisions, wait_settled
from activities.targets.kubernetes.services import original_selector, set_selector, unpin
from models.kubernetes import WarmRevision, WindowInput
from models.names import (
    ANNOTATION_REVISION,
    ANNOTATION_ROLLOUT_ID,
    LABEL_ROLE,
    LABEL_WARM_OF,
    LABEL_WARM_REVISION,
    warm_deployment_name,
)


class WindowActivities:
    def __init__(self, clients: KubeClients):
        self._clients = clients

    def _read(self, request: WindowInput) -> tuple[client.AppsV1Api, client.CoreV1Api, client.V1Deployment, client.V1Service]:
        t = request.target
        apps, core = self._clients.apps(t.context), self._clients.core(t.context)
        with api_errors(f"deployment {t.namespace}/{t.deployment}"):
            deployment = apps.read_namespaced_deployment(t.deployment, t.namespace)
        with api_errors(f"service {t.namespace}/{request.service}"):
            service = core.read_namespaced_service(request.service, t.namespace)
        return apps, core, deployment, service

    @activity.defn(name="keep_warm")
    def keep_warm(self, request: WindowInput) -> list[WarmRevision]:
        """Warm copies of the last `revisions` revisions before the current one, all pods ready."""
        t = request.target
        apps, _, deployment, service = self._read(request)
        current = int((deployment.metadata.annotations or {}).get(ANNOTATION_REVISION, "0"))
        owned = revisions(apps, deployment)
        previous = sorted((r for r in owned if r < current), reverse=True)[: request.revisions]
        hidden = set(original_selector(service)) | set(deployment.spec.selector.match_labels or {})
        warm = []
        for revision in previous:
            template = pod_template(apps, owned[revision])
            marks = {LABEL_WARM_OF: t.deployment, LABEL_WARM_REVISION: str(revision)}
            labels = {k: v for k, v in (template["metadata"].get("labels") or {}).items() if k not in hidden}
            template["metadata"]["labels"] = {**labels, **marks}
            body = {
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": warm_deployment_name(t.deployment, revision),
                             "labels": {LABEL_ROLE: "warm", LABEL_WARM_OF: t.deployment},
                             "annotations": {ANNOTATION_ROLLOUT_ID: request.rollout_id}},
                "spec": {"replicas": deployment.spec.replicas, "selector": {"matchLabels": marks}, "template": template},
            }
            with api_errors(f"deployment {t.namespace}/{body['metadata']['name']}"):
                create_if_absent(apps.create_namespaced_deployment, t.namespace, body)
            warm.append(WarmRevision(revision=revision, image=template["spec"]["containers"][0]["image"]))
        for copy in warm:
            wait_settled(apps, t.namespace, warm_deployment_name(t.deployment, copy.revision), request.progress_deadline_seconds)
        return warm

    @activity.defn(name="switch_to_warm")
    def switch_to_warm(self, request: WindowInput) -> None:
        """The Service selects the warm copy of `revision` (ready first) in one update."""
        t = request.target
        apps, core, _, service = self._read(request)
        name = warm_deployment_name(t.deployment, request.revision)
        with api_errors(f"deployment {t.namespace}/{name}"):
            warm = apps.read_namespaced_deployment(name, t.namespace)
        if not warm.spec.replicas:
            raise invalid(f"deployment {t.namespace}/{name} has no pods: revision {request.revision} is not warm")
        wait_settled(apps, t.namespace, name, request.progress_deadline_seconds)
        set_selector(core, service, {LABEL_WARM_OF: t.deployment, LABEL_WARM_REVISION: str(request.revision)})

    @activity.defn(name="close_window")
    def close_window(self, request: WindowInput) -> None:
        """The Service's own selector back (the Deployment serves again), then every warm copy removed."""
        t = request.target
        apps, core, _, _ = self._read(request)
        unpin(core, t.namespace, request.service)
        listed = apps.list_namespaced_deployment(t.namespace, label_selector=f"{LABEL_WARM_OF}={t.deployment}").items
        for warm in listed:
            remove_sibling(apps, t.namespace, warm.metadata.name, request.progress_deadline_seconds)
