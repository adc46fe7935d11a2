"""A sample workload (namespace, Deployment, Service with simulated traffic) for the demo and tests."""

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


def _create(call) -> bool:
    try:
        call()
        return True
    except client.ApiException as error:
        if error.status != 409:
            raise
        return False
