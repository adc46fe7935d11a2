"""Sample workloads (namespace, Deployment or StatefulSet, Service with simulated traffic) for the demo and tests."""

from __future__ import annotations

import time

from kubernetes import client

from localcluster.traffic import ANNOTATION_RPS


def deploy(api: client.ApiClient, namespace: str, name: str, image: str, replicas: int, rps: int = 100) -> None:
    """Create the workload, or put an existing one back on `image` at `replicas`; waits until ready."""
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    labels = {"app": name}
    _create(lambda: core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace))))
    container = client.V1Container(name="app", image=image, ports=[client.V1ContainerPort(container_port=8080)])
    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels), spec=client.V1PodSpec(containers=[container])
            ),
        ),
    )
    if not _create(lambda: apps.create_namespaced_deployment(namespace, deployment)):
        apps.replace_namespaced_deployment(name, namespace, deployment)
    service = client.V1Service(
        metadata=client.V1ObjectMeta(name=name, labels=labels, annotations={ANNOTATION_RPS: str(rps)}),
        spec=client.V1ServiceSpec(selector=labels, ports=[client.V1ServicePort(port=80, target_port=8080)]),
    )
    _create(lambda: core.create_namespaced_service(namespace, service))
    wait_ready(apps, namespace, name)


def wait_ready(apps: client.AppsV1Api, namespace: str, name: str, timeout: float = 60) -> client.V1Deployment:
    from activities.targets.kubernetes.readiness import is_settled

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = apps.read_namespaced_deployment(name, namespace)
        if is_settled(current):
            return current
        time.sleep(0.2)
    raise TimeoutError(f"deployment {namespace}/{name} not ready in {timeout}s")


def deploy_stateful_set(api: client.ApiClient, namespace: str, name: str, image: str, replicas: int, rps: int = 100,
                        on_delete: bool = False, volume: bool = True) -> None:
    """A StatefulSet with its headless Service and a traffic Service; each ordinal's claim (`data`, from
    volumeClaimTemplates) bound by the real PV controller to a PersistentVolume made here for it (hostPath
    under /nonexistent: no kubelet mounts it). Waits until every ordinal is Ready."""
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    labels = {"app": name}
    _create(lambda: core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace))))
    claims = []
    if volume:
        for ordinal in range(replicas):
            pv = client.V1PersistentVolume(metadata=client.V1ObjectMeta(name=f"{namespace}-{name}-{ordinal}"), spec=client.V1PersistentVolumeSpec(
                capacity={"storage": "1Gi"}, access_modes=["ReadWriteOnce"], storage_class_name="",
                persistent_volume_reclaim_policy="Retain", host_path=client.V1HostPathVolumeSource(path=f"/nonexistent/{ordinal}"),
                claim_ref=client.V1ObjectReference(namespace=namespace, name=f"data-{name}-{ordinal}")))
            _create(lambda pv=pv: core.create_persistent_volume(pv))
        claims = [client.V1PersistentVolumeClaim(metadata=client.V1ObjectMeta(name="data"), spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"], storage_class_name="", resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"})))]
    container = client.V1Container(name="app", image=image, ports=[client.V1ContainerPort(container_port=8080)],
                                   volume_mounts=[client.V1VolumeMount(name="data", mount_path="/data")] if volume else None)
    strategy = client.V1StatefulSetUpdateStrategy(type="OnDelete" if on_delete else "RollingUpdate")
    sts = client.V1StatefulSet(metadata=client.V1ObjectMeta(name=name, labels=labels), spec=client.V1StatefulSetSpec(
        replicas=replicas, service_name=f"{name}-headless", selector=client.V1LabelSelector(match_labels=labels),
        update_strategy=strategy, volume_claim_templates=claims or None,
        template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels=labels), spec=client.V1PodSpec(containers=[container]))))
    _create(lambda: apps.create_namespaced_stateful_set(namespace, sts))
    headless = client.V1Service(metadata=client.V1ObjectMeta(name=f"{name}-headless", labels=labels), spec=client.V1ServiceSpec(
        cluster_ip="None", selector=labels, ports=[client.V1ServicePort(port=8080, target_port=8080)]))
    _create(lambda: core.create_namespaced_service(namespace, headless))
    service = client.V1Service(
        metadata=client.V1ObjectMeta(name=name, labels=labels, annotations={ANNOTATION_RPS: str(rps)}),
        spec=client.V1ServiceSpec(selector=labels, ports=[client.V1ServicePort(port=80, target_port=8080)]),
    )
    _create(lambda: core.create_namespaced_service(namespace, service))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        current = apps.read_namespaced_stateful_set(name, namespace)
        if (current.status.ready_replicas or 0) == replicas and current.status.current_revision == current.status.update_revision:
            return
        time.sleep(0.2)
    raise TimeoutError(f"statefulset {namespace}/{name} not ready in 60s")


def add_nodes(api: client.ApiClient, nodes: dict[str, dict[str, str]]) -> None:
    """Nodes the fake kubelet runs pods on (named `fake-node-…`), with their labels, Ready as a kubelet
    reports them and untainted (no node lifecycle controller runs here: they stay so until deleted)."""
    from localcluster.kubelet import PREFIX

    core = client.CoreV1Api(api)
    for name, labels in nodes.items():
        assert name.startswith(PREFIX), name
        _create(lambda name=name, labels=labels: core.create_node(client.V1Node(metadata=client.V1ObjectMeta(
            name=name, labels={"kubernetes.io/hostname": name, **labels}))))
        # the API server's TaintNodesByCondition taints a new node not-ready; the node lifecycle controller
        # (not run here) lifts it once the node is Ready: a DaemonSet's pods do not tolerate it
        core.patch_node(name, {"spec": {"taints": None}})
        core.patch_node_status(name, {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                                                 "message": "fake kubelet"}],
                                                 "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                                                 "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"}}})


def deploy_daemon_set(api: client.ApiClient, namespace: str, name: str, image: str, node_selector: dict[str, str],
                      rolling: bool = True) -> None:
    """A DaemonSet on the nodes `node_selector` picks; waits until every one of them runs it, Ready."""
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    labels = {"app": name}
    _create(lambda: core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace))))
    container = client.V1Container(name="agent", image=image)
    strategy = client.V1DaemonSetUpdateStrategy(type="RollingUpdate" if rolling else "OnDelete")
    ds = client.V1DaemonSet(metadata=client.V1ObjectMeta(name=name, labels=labels), spec=client.V1DaemonSetSpec(
        selector=client.V1LabelSelector(match_labels=labels), update_strategy=strategy,
        template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels=labels), spec=client.V1PodSpec(
            containers=[container], node_selector=node_selector))))
    _create(lambda: apps.create_namespaced_daemon_set(namespace, ds))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        current = apps.read_namespaced_daemon_set(name, namespace)
        status = current.status
        if status.desired_number_scheduled and status.number_ready == status.desired_number_scheduled and \
                status.updated_number_scheduled == status.desired_number_scheduled:
            return
        time.sleep(0.2)
    raise TimeoutError(f"daemonset {namespace}/{name} not ready in 60s")


def _create(call) -> bool:
    try:
        call()
        return True
    except client.ApiException as error:
        if error.status != 409:
            raise
        return False
