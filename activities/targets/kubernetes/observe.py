"""What a Kubernetes target runs now: the target Deployment's image, whether it is settled — its status
counts and, read from the pods themselves, that every pod of its current revision is ready and runs that
image (activities/targets/kubernetes/pods.py) — and any canary or preview of a rollout beside it.
Read-only (a retry changes nothing)."""

from __future__ import annotations

import time

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.targets.kubernetes.client import KubeClients, api_errors, read_optional
from activities.targets.kubernetes.daemonset import observe_daemon_set
from activities.targets.kubernetes.pods import current_pods
from activities.targets.kubernetes.readiness import is_settled
from activities.targets.kubernetes.statefulset import observe_stateful_set
from models.kubernetes import KubernetesTarget
from models.names import canary_deployment_name, preview_deployment_name
from models.targets import TargetObservation

SETTLE_SECONDS = 10


class ObserveActivities:
    def __init__(self, clients: KubeClients):
        self._clients = clients

    @activity.defn(name="observe_kubernetes_target")
    def observe_kubernetes_target(self, t: KubernetesTarget) -> TargetObservation:
        apps, core = self._clients.apps(t.context), self._clients.core(t.context)
        if t.stateful_set:
            return observe_stateful_set(apps, core, t)
        if t.daemon_set:
            return observe_daemon_set(apps, core, t)
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:  # a Deployment between two status updates of its controller settles within moments
            with api_errors(f"deployment {t.namespace}/{t.deployment}"):
                deployment = apps.read_namespaced_deployment(t.deployment, t.namespace)
                pods = current_pods(apps, core, deployment)
            want = deployment.spec.replicas or 0
            settled = is_settled(deployment) and pods.running == want and not pods.problems
            if settled or time.monotonic() > deadline:
                break
            activity.heartbeat()
            time.sleep(0.25)
        image = deployment.spec.template.spec.containers[0].image
        besides = []
        for name in (canary_deployment_name(t.deployment), preview_deployment_name(t.deployment)):
            sibling = read_optional(apps.read_namespaced_deployment, name, t.namespace)
            if sibling is not None and (sibling.spec.replicas or 0) > 0:
                besides.append(f"{name} runs {sibling.spec.replicas} pods of {sibling.spec.template.spec.containers[0].image}")
        ready = f"{deployment.status.ready_replicas or 0}/{want} ready"
        return TargetObservation(target=f"deployment {t.namespace}/{t.deployment}", version=image,
                                 ready=settled and not besides, detail="; ".join([ready, pods.describe(), *besides]),
                                 instances=pods.running, revision=pods.template_hash)

    @activity.defn(name="pod_template_hash")
    def pod_template_hash(self, t: KubernetesTarget) -> str:
        """The `pod-template-hash` of the Deployment's current revision (its ReplicaSet's label), for an
        analysis arg's valueFrom.podTemplateHashValue; retried while the controller has not made it yet."""
        apps, core = self._clients.apps(t.context), self._clients.core(t.context)
        with api_errors(f"deployment {t.namespace}/{t.deployment}"):
            deployment = apps.read_namespaced_deployment(t.deployment, t.namespace)
            activity.heartbeat()
            found = current_pods(apps, core, deployment)
        if not found.template_hash:
            raise ApplicationError(f"deployment {t.namespace}/{t.deployment}: {found.describe()}", type="NotYet")
        return found.template_hash
