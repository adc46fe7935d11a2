"""Evidence from the pods: which pods a Deployment's current revision runs, and whether each runs the
image the template names — by the digest the container runtime reports (`containerStatuses[].imageID`)
where the template pins one, else by the pod's own spec. A Deployment's status counts pods; this reads
them, so a template changed back by someone else, a node that pulled another image under the tag, or a
revision with no pods at all is seen."""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes import client

from activities.targets.kubernetes.client import list_all

REVISION = "deployment.kubernetes.io/revision"
HASH = "pod-template-hash"


@dataclass
class PodEvidence:
    template_hash: str = ""
    running: int = 0  # pods of the current revision, ready, running the image
    problems: tuple[str, ...] = ()

    def describe(self) -> str:
        head = f"{self.running} pods of template {self.template_hash or '?'} run it"
        return "; ".join([head, *self.problems[:3]])


def is_ready(obj: client.V1Pod | client.V1Node) -> bool:
    """Its `Ready` condition is True (a pod's or a node's)."""
    return any(c.type == "Ready" and c.status == "True" for c in (obj.status.conditions or []))


def digest_of(image: str) -> str:
    return image.partition("@")[2] if "@sha256:" in image else ""


def current_pods(apps: client.AppsV1Api, core: client.CoreV1Api, deployment: client.V1Deployment) -> PodEvidence:
    """The pods of the Deployment's current ReplicaSet (the one of its revision, owned by it), each checked."""
    meta, spec = deployment.metadata, deployment.spec
    revision = (meta.annotations or {}).get(REVISION)
    owned = [rs for rs in list_all(apps.list_namespaced_replica_set, meta.namespace)  # any selector: matchExpressions too
             if any(o.uid == meta.uid for o in rs.metadata.owner_references or [])]
    current = [rs for rs in owned if (rs.metadata.annotations or {}).get(REVISION) == revision]
    if revision is None or len(current) != 1:
        return PodEvidence(problems=(f"no single ReplicaSet of revision {revision} (found {len(current)})",))
    template_hash = (current[0].metadata.labels or {}).get(HASH, "")
    # the ReplicaSet's own pods, as its controller counts them: owned by it, not being deleted, not ended
    # (an evicted or shut-down pod stays listed until garbage collection)
    listed = list_all(core.list_namespaced_pod, meta.namespace, label_selector=f"{HASH}={template_hash}")
    pods = [p for p in listed if any(o.uid == current[0].metadata.uid for o in p.metadata.owner_references or [])
            and p.metadata.deletion_timestamp is None and p.status.phase not in ("Succeeded", "Failed")]
    container = spec.template.spec.containers[0]
    pinned = digest_of(container.image)
    running, problems = 0, []
    for pod in pods:
        problem = pod_problem(pod, container.name, container.image, pinned)
        if problem:
            problems.append(f"{pod.metadata.name} {problem}")
        else:
            running += 1
    return PodEvidence(template_hash=template_hash, running=running, problems=tuple(problems))


def pod_problem(pod: client.V1Pod, name: str, image: str, pinned: str) -> str:
    if not is_ready(pod):
        return "is not ready"
    spec = next((c for c in pod.spec.containers if c.name == name), None)
    if spec is None or spec.image != image:
        return f"runs {spec.image if spec else 'no container ' + name}, not {image}"
    status = next((c for c in pod.status.container_statuses or [] if c.name == name), None)
    reported = digest_of(status.image_id or "") if status is not None else ""
    if pinned and reported and reported != pinned:
        return f"runs {reported} (the runtime's imageID), not the pinned {pinned}"
    return ""
