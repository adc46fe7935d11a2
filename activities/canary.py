"""Canary activities on Kubernetes: prepare the canary, set a weight (through the spec's router),
promote (stable takes the new image) and abort (all traffic back to stable, canary to zero).

Every activity is idempotent: it reads the cluster, changes only what differs, and a retry after a
crash finds its own earlier work already done. The worker builds one `CanaryActivities` with its
clients and registers the bound methods.
"""

from __future__ import annotations

import copy
import time

from kubernetes import client
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.kube import (
    STRATEGIC_MERGE,
    KubeClients,
    api_errors,
    create_if_absent,
    ensure_not_busy,
    read_optional,
    wait_settled,
)
from activities.routing import router_for
from activities.routing.replicas import scale
from models.kubernetes import FinishInput, PrepareCanaryInput, PrepareCanaryResult, SetWeightInput, WeightResult
from models.names import (
    ANNOTATION_ROLLOUT_ID,
    ANNOTATION_RUN_ID,
    ANNOTATION_STABLE_REPLICAS,
    ANNOTATION_STEP,
    ANNOTATION_WEIGHT,
    LABEL_ROLE,
    canary_deployment_name,
)


class CanaryActivities:
    def __init__(self, clients: KubeClients):
        self._clients = clients

    @activity.defn(name="prepare_canary")
    def prepare_canary(self, request: PrepareCanaryInput) -> PrepareCanaryResult:
        """Check the target, remember the stable size, create the canary Deployment (0 replicas) and Service."""
        t = request.target
        apps, core = self._clients.apps(t.context), self._clients.core(t.context)
        ns = t.namespace
        with api_errors(f"namespace {ns}"):
            core.read_namespace(ns)
        with api_errors(f"deployment {ns}/{t.deployment}"):
            stable = apps.read_namespaced_deployment(t.deployment, ns)
        with api_errors(f"service {ns}/{request.stable_service}"):
            service = core.read_namespaced_service(request.stable_service, ns)
        pod_labels = stable.spec.template.metadata.labels or {}
        selector = service.spec.selector or {}
        if not selector or any(pod_labels.get(k) != v for k, v in selector.items()):
            raise ApplicationError(
                f"service {ns}/{request.stable_service} selector {selector} does not select the pods of "
                f"deployment {ns}/{t.deployment} (labels {pod_labels})",
                type="InvalidTarget",
                non_retryable=True,
            )
        containers = stable.spec.template.spec.containers
        container = containers[0]
        ensure_not_busy(stable, request.rollout_id)
        annotations = stable.metadata.annotations or {}
        # The stable size is recorded once: a retry (or a resumed rollout) sees the original size
        # even after the canary steps have scaled stable down.
        total = int(annotations.get(ANNOTATION_STABLE_REPLICAS, stable.spec.replicas or 0))
        if total < 1:
            raise ApplicationError(
                f"deployment {ns}/{t.deployment} has 0 replicas: nothing to shift traffic from",
                type="InvalidTarget",
                non_retryable=True,
            )
        marks = {ANNOTATION_STABLE_REPLICAS: str(total), ANNOTATION_ROLLOUT_ID: request.rollout_id}
        if any(annotations.get(k) != v for k, v in marks.items()):
            with api_errors(f"deployment {ns}/{t.deployment}"):
                apps.patch_namespaced_deployment(t.deployment, ns, {"metadata": {"annotations": marks}}, _content_type=STRATEGIC_MERGE)
        self._ensure_canary_deployment(apps, stable, request)
        self._ensure_canary_service(core, service, request)
        return PrepareCanaryResult(total_replicas=total, stable_image=container.image, container=container.name)

    def _ensure_canary_deployment(
        self, apps: client.AppsV1Api, stable: client.V1Deployment, request: PrepareCanaryInput
    ) -> None:
        ns, name = request.target.namespace, canary_deployment_name(request.target.deployment)
        template = copy.deepcopy(stable.spec.template)
        template.metadata.labels = {**(template.metadata.labels or {}), LABEL_ROLE: "canary"}
        template.spec.containers[0].image = request.image
        selector = {**(stable.spec.selector.match_labels or {}), LABEL_ROLE: "canary"}
        annotations = {
            ANNOTATION_ROLLOUT_ID: request.rollout_id,
            ANNOTATION_RUN_ID: activity.info().workflow_run_id,
            ANNOTATION_STEP: "-1",
            ANNOTATION_WEIGHT: "0",
        }
        body = client.V1Deployment(
            metadata=client.V1ObjectMeta(name=name, labels={LABEL_ROLE: "canary"}, annotations=annotations),
            spec=client.V1DeploymentSpec(
                replicas=0,
                selector=client.V1LabelSelector(match_labels=selector),
                template=template,
                progress_deadline_seconds=request.progress_deadline_seconds,
            ),
        )
        with api_errors(f"deployment {ns}/{name}"):
            existing = read_optional(apps.read_namespaced_deployment, name, ns)
            if existing is None:
                create_if_absent(apps.create_namespaced_deployment, ns, body)
                return
            marks = existing.metadata.annotations or {}
            if marks.get(ANNOTATION_RUN_ID) == annotations[ANNOTATION_RUN_ID] and existing.metadata.deletion_timestamp is None:
                return  # prepared by an earlier attempt of this same run
            if (existing.spec.replicas or 0) > 0 and existing.metadata.deletion_timestamp is None:
                raise ApplicationError(
                    f"deployment {ns}/{name} runs {existing.spec.replicas} canary pods of "
                    f"{marks.get(ANNOTATION_ROLLOUT_ID, 'another rollout')} (run {marks.get(ANNOTATION_RUN_ID, '?')}): "
                    "abort that rollout, or scale the canary to 0, before starting another",
                    type="InvalidTarget",
                    non_retryable=True,
                )
            # Left at zero by an earlier run: replace it, so nothing of that run (steps, template) carries over.
            if existing.metadata.deletion_timestamp is None:
                apps.delete_namespaced_deployment(name, ns, propagation_policy="Background")
            self._wait_gone(apps, ns, name)
            create_if_absent(apps.create_namespaced_deployment, ns, body)

    @staticmethod
    def _wait_gone(apps: client.AppsV1Api, namespace: str, name: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while read_optional(apps.read_namespaced_deployment, name, namespace) is not None:
            if time.monotonic() > deadline:
                raise ApplicationError(f"deployment {namespace}/{name} still being deleted after {timeout}s")
            activity.heartbeat(f"waiting for {namespace}/{name} to be deleted")
            time.sleep(0.25)

    def _ensure_canary_service(self, core: client.CoreV1Api, stable: client.V1Service, request: PrepareCanaryInput):
        ns, name = request.target.namespace, request.canary_service
        selector = {**(stable.spec.selector or {}), LABEL_ROLE: "canary"}
        with api_errors(f"service {ns}/{name}"):
            existing = read_optional(core.read_namespaced_service, name, ns)
            if existing is None:
                ports = [
                    client.V1ServicePort(name=p.name, port=p.port, target_port=p.target_port, protocol=p.protocol)
                    for p in stable.spec.ports
                ]
                body = client.V1Service(
                    metadata=client.V1ObjectMeta(name=name, labels={LABEL_ROLE: "canary"}),
                    spec=client.V1ServiceSpec(selector=selector, ports=ports),
                )
                create_if_absent(core.create_namespaced_service, ns, body)
            elif existing.spec.selector != selector:
                core.patch_namespaced_service(name, ns, {"spec": {"selector": selector}}, _content_type=STRATEGIC_MERGE)

    @activity.defn(name="set_canary_weight")
    def set_canary_weight(self, request: SetWeightInput) -> WeightResult:
        return router_for(request.router, self._clients).set_weight(request)

    @activity.defn(name="promote_canary")
    def promote_canary(self, request: FinishInput) -> None:
        """Stable takes the new image at full size; once it is settled the canary Deployment is removed."""
        t = request.target
        apps = self._clients.apps(t.context)
        ns = t.namespace
        what = f"deployment {ns}/{t.deployment}"
        with api_errors(what):
            stable = apps.read_namespaced_deployment(t.deployment, ns)
        image = next((c.image for c in stable.spec.template.spec.containers if c.name == request.container), None)
        if image != request.image or stable.spec.replicas != request.total_replicas:
            body = {
                "spec": {
                    "replicas": request.total_replicas,
                    "template": {"spec": {"containers": [{"name": request.container, "image": request.image}]}},
                }
            }
            with api_errors(what):
                apps.patch_namespaced_deployment(t.deployment, ns, body, _content_type=STRATEGIC_MERGE)
        wait_settled(apps, ns, t.deployment, request.progress_deadline_seconds)
        self._remove_canary(apps, request)

    @activity.defn(name="abort_canary")
    def abort_canary(self, request: FinishInput) -> None:
        """Stable back to full size and ready first (never route to an unready stable), then canary to zero."""
        t = request.target
        apps = self._clients.apps(t.context)
        ns = t.namespace
        scale(apps, ns, t.deployment, request.total_replicas, {})
        wait_settled(apps, ns, t.deployment, request.progress_deadline_seconds)
        canary = canary_deployment_name(t.deployment)
        try:
            scale(apps, ns, canary, 0, {ANNOTATION_WEIGHT: "0"})
        except ApplicationError as error:
            if error.type != "NotFound":
                raise
            return
        wait_settled(apps, ns, canary, request.progress_deadline_seconds)
        self._forget_stable_size(apps, request)

    def _remove_canary(self, apps: client.AppsV1Api, request: FinishInput) -> None:
        """Drain the canary (scale to zero and wait), then delete its Deployment; its ReplicaSet goes with it."""
        ns, name = request.target.namespace, canary_deployment_name(request.target.deployment)
        try:
            scale(apps, ns, name, 0, {ANNOTATION_WEIGHT: "0"})
        except ApplicationError as error:
            if error.type == "NotFound":  # removed by an earlier attempt
                self._forget_stable_size(apps, request)
                return
            raise
        wait_settled(apps, ns, name, request.progress_deadline_seconds)
        with api_errors(f"deployment {ns}/{name}"):
            try:
                apps.delete_namespaced_deployment(name, ns, propagation_policy="Background")
            except client.ApiException as error:
                if error.status != 404:
                    raise
        self._forget_stable_size(apps, request)

    def _forget_stable_size(self, apps: client.AppsV1Api, request: FinishInput) -> None:
        t = request.target
        with api_errors(f"deployment {t.namespace}/{t.deployment}"):
            stable = apps.read_namespaced_deployment(t.deployment, t.namespace)
            if ANNOTATION_STABLE_REPLICAS in (stable.metadata.annotations or {}):
                patch = {"metadata": {"annotations": {ANNOTATION_STABLE_REPLICAS: None}}}
                apps.patch_namespaced_deployment(t.deployment, t.namespace, patch, _content_type=STRATEGIC_MERGE)
