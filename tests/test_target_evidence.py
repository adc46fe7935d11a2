"""What a Kubernetes target runs, read from its pods (real kube-apiserver and controller-manager, the fake
kubelet reporting each container's `imageID` as a runtime does): the current revision's pods, each
ready and running the template's image at its pinned digest, are the evidence; a pod whose image was
changed in place, and a Deployment scaled to 0, are seen as such."""

from __future__ import annotations

import time

import pytest
from kubernetes import client
from temporalio.testing import ActivityEnvironment

from activities.targets.kubernetes.client import KubeClients
from activities.targets.kubernetes.observe import ObserveActivities
from localcluster.workload import deploy, wait_ready
from models.kubernetes import KubernetesTarget

PINNED = "registry.local/web:2.0.0@sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def clients(local_cluster):
    clients = KubeClients(str(local_cluster.kubeconfig))
    yield clients
    clients.close()


def test_the_pods_are_the_evidence(kube_api, clients, unique):
    namespace = f"ev-{unique}"
    deploy(kube_api, namespace, "web", PINNED, replicas=2)
    target = KubernetesTarget(context="local", namespace=namespace, deployment="web")
    observe = ObserveActivities(clients).observe_kubernetes_target
    env = ActivityEnvironment()

    seen = env.run(observe, target)
    assert (seen.version, seen.ready, seen.instances) == (PINNED, True, 2), seen
    assert seen.revision and f"2 pods of template {seen.revision} run it" in seen.detail
    pods = client.CoreV1Api(kube_api).list_namespaced_pod(namespace, label_selector="app=web").items
    assert {p.status.container_statuses[0].image_id for p in pods} == {"registry.local/web@sha256:" + "ab" * 32}

    victim = pods[0].metadata.name  # someone changes one pod's image in place (a pod's image is mutable)
    client.CoreV1Api(kube_api).patch_namespaced_pod(victim, namespace, {"spec": {"containers": [
        {"name": "app", "image": "registry.local/web:6.6.6"}]}})
    began = time.monotonic()
    seen = env.run(observe, target)
    assert (seen.ready, seen.instances) == (False, 1), seen
    assert f"{victim} runs registry.local/web:6.6.6, not {PINNED}" in seen.detail
    assert time.monotonic() - began < 20, "it waits a few seconds for a settling Deployment, no longer"

    apps = client.AppsV1Api(kube_api)
    apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 0}})
    wait_ready(apps, namespace, "web")
    for _ in range(50):  # the scaled-away pods are deleted
        if not client.CoreV1Api(kube_api).list_namespaced_pod(namespace, label_selector="app=web").items:
            break
        time.sleep(0.2)
    seen = env.run(observe, target)
    assert (seen.version, seen.ready, seen.instances) == (PINNED, True, 0), seen
    assert seen.detail.startswith("0/0 ready; 0 pods of template"), seen.detail


def test_lists_are_read_in_pages(kube_api, unique):
    """The evidence's lists (a namespace's ReplicaSets, a revision's pods) page with `limit`/`continue`: read
    one item a page, the apiserver's own continue tokens give every item once."""
    from activities.targets.kubernetes.client import list_all

    namespace = f"pages-{unique}"
    for name in ("a", "b", "c"):
        deploy(kube_api, namespace, name, PINNED, replicas=1)
    apps, core = client.AppsV1Api(kube_api), client.CoreV1Api(kube_api)
    whole = sorted(rs.metadata.name for rs in apps.list_namespaced_replica_set(namespace).items)
    assert len(whole) == 3
    pages: list[int] = []

    def counted(call):
        def paged(*args, **kwargs):
            answer = call(*args, **kwargs)
            pages.append(len(answer.items))
            return answer
        return paged

    assert sorted(rs.metadata.name for rs in list_all(counted(apps.list_namespaced_replica_set), namespace,
                                                      page=1)) == whole
    assert pages == [1, 1, 1], f"the apiserver answered one item a page: {pages}"
    pages.clear()
    pods = list_all(counted(core.list_namespaced_pod), namespace, page=2, label_selector="app in (a,b,c)")
    assert len(pods) == len({p.metadata.name for p in pods}) == 3 and pages == [2, 1], pages
