"""Deployment activities for the rolling-update and recreate strategies: roll the Deployment out with
its own strategy and wait for it, or undo it to the revision it was on before (`kubectl rollout undo`).

The revision to go back to is written on the Deployment in the same patch that changes it, so an
undo finds it even when the roll-out attempt that wrote it was cancelled or crashed.
"""

from __future__ import annotations

from kubernetes import client
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.targets.kubernetes.client import JSON_PATCH, STRATEGIC_MERGE, KubeClients, api_errors
from activities.targets.kubernetes.deployments import pod_template
from activities.targets.kubernetes.ownership import ensure_not_busy
from activities.targets.kubernetes.readiness import replica_set_of_revision, revisions, wait_settled
from models.kubernetes import KubernetesTarget, RollOutInput, RollOutResult, UndoInput
from models.names import ANNOTATION_PREVIOUS_REVISION, ANNOTATION_REVISION, ANNOTATION_ROLLOUT_ID, ANNOTATION_RUN_ID


class DeploymentActivities:
    def __init__(self, clients: KubeClients):
        self._clients = clients

    def _target(self, t: KubernetesTarget) -> tuple[client.AppsV1Api, str, client.V1Deployment]:
        apps = self._clients.apps(t.context)
        what = f"deployment {t.namespace}/{t.deployment}"
        with api_errors(what):
            return apps, what, apps.read_namespaced_deployment(t.deployment, t.namespace)

    @activity.defn(name="roll_out_deployment")
    def roll_out_deployment(self, request: RollOutInput) -> RollOutResult:
        t = request.target
        apps, what, current = self._target(t)
        marks = current.metadata.annotations or {}
        container = current.spec.template.spec.containers[0]
        run_id = activity.info().workflow_run_id
        if marks.get(ANNOTATION_RUN_ID) == run_id:  # patched by an earlier attempt of this run
            previous_revision = int(marks.get(ANNOTATION_PREVIOUS_REVISION, "0"))
            previous_image = _image_of_revision(apps, current, previous_revision) or container.image
        else:
            ensure_not_busy(current, request.rollout_id)
            previous_revision = int(marks.get(ANNOTATION_REVISION, "0"))
            previous_image = container.image
            ours = {
                ANNOTATION_RUN_ID: run_id,
                ANNOTATION_ROLLOUT_ID: request.rollout_id,
                ANNOTATION_PREVIOUS_REVISION: str(previous_revision),
            }
            body, content_type = self._change(apps, current, request, ours)
            with api_errors(what):
                apps.patch_namespaced_deployment(t.deployment, t.namespace, body, _content_type=content_type)
        settled = wait_settled(apps, t.namespace, t.deployment, request.progress_deadline_seconds)
        return RollOutResult(
            previous_image=previous_image,
            previous_revision=previous_revision,
            revision=int((settled.metadata.annotations or {}).get(ANNOTATION_REVISION, "0")),
            replicas=settled.spec.replicas or 0,
            image=settled.spec.template.spec.containers[0].image,
        )

    def _change(self, apps: client.AppsV1Api, current: client.V1Deployment, request: RollOutInput,
                ours: dict[str, str]) -> tuple[object, str]:
        """The one patch that makes the change (and records who made it, resourceVersion-checked)."""
        metadata = {"resourceVersion": current.metadata.resource_version, "annotations": ours}
        container = current.spec.template.spec.containers[0]
        if request.kind == "Restart":  # what `kubectl rollout restart` does; the value is the workflow's time
            template = {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": request.restarted_at}}}
            return {"metadata": metadata, "spec": {"template": template}}, STRATEGIC_MERGE
        if request.kind == "Undo":
            template = _template_of_revision(apps, current, request.to_revision)
            ops: list[dict] = [{"op": "replace", "path": "/metadata/resourceVersion", "value": metadata["resourceVersion"]}]
            if not current.metadata.annotations:
                ops.append({"op": "add", "path": "/metadata/annotations", "value": {}})
            ops += [{"op": "add", "path": "/metadata/annotations/" + k.replace("~", "~0").replace("/", "~1"), "value": v}
                    for k, v in ours.items()]
            return ops + [{"op": "replace", "path": "/spec/template", "value": template}], JSON_PATCH
        strategy: dict = {"type": request.kind}
        if request.kind == "RollingUpdate":
            strategy["rollingUpdate"] = {"maxSurge": request.max_surge, "maxUnavailable": request.max_unavailable}
        else:
            strategy["rollingUpdate"] = None  # Recreate forbids it
        spec = {
            "strategy": strategy,
            "progressDeadlineSeconds": request.progress_deadline_seconds,
            "template": {"spec": {"containers": [{"name": container.name, "image": request.image}]}},
        }
        return {"metadata": metadata, "spec": spec}, STRATEGIC_MERGE

    @activity.defn(name="undo_deployment")
    def undo_deployment(self, request: UndoInput) -> str:
        """Put back the pod template of the revision recorded before this run; returns its image."""
        t = request.target
        apps, what, current = self._target(t)
        marks = current.metadata.annotations or {}
        if marks.get(ANNOTATION_RUN_ID) != activity.info().workflow_run_id:
            return current.spec.template.spec.containers[0].image  # this run never changed it
        previous = replica_set_of_revision(apps, current, int(marks.get(ANNOTATION_PREVIOUS_REVISION, "0")))
        if previous is None:
            raise ApplicationError(
                f"{what}: the ReplicaSet of revision {marks.get(ANNOTATION_PREVIOUS_REVISION)} is gone; cannot undo",
                type="UndoImpossible",
                non_retryable=True,
            )
        template = pod_template(apps, previous)
        wanted = template["spec"]["containers"][0]["image"]
        if current.spec.template.spec.containers[0].image != wanted:
            body = [{"op": "replace", "path": "/spec/template", "value": template}]  # the old template, exactly
            with api_errors(what):
                apps.patch_namespaced_deployment(t.deployment, t.namespace, body, _content_type=JSON_PATCH)
        wait_settled(apps, t.namespace, t.deployment, request.progress_deadline_seconds)
        return wanted


def _template_of_revision(apps: client.AppsV1Api, deployment: client.V1Deployment, revision: int) -> dict:
    """The pod template of `revision` (0: the revision before the current one), from its ReplicaSet."""
    owned = revisions(apps, deployment)
    current = int((deployment.metadata.annotations or {}).get(ANNOTATION_REVISION, "0"))
    if revision == 0:
        older = [r for r in owned if r < current]
        revision = max(older) if older else -1
    if revision not in owned or revision == current:
        kept = ", ".join(str(r) for r in sorted(owned)) or "none"
        raise ApplicationError(
            f"deployment {deployment.metadata.namespace}/{deployment.metadata.name}: no earlier revision "
            f"{'to go back to' if revision < 0 else revision} (current {current}; kept: {kept})",
            type="Invalid",
            non_retryable=True,
        )
    return pod_template(apps, owned[revision])


def _image_of_revision(apps: client.AppsV1Api, deployment: client.V1Deployment, revision: int) -> str | None:
    rs = replica_set_of_revision(apps, deployment, revision)
    return rs.spec.template.spec.containers[0].image if rs else None
