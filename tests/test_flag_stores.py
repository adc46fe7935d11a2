"""The flag channel's stores, one write at a time: what a write keeps (the rest of a ConfigMap, the
flag's own targeting, the other flags' text, an Unleash strategy's variants and constraints), what it
refuses (targeting it cannot ramp, naming why) and what two writers sharing a document get (every
write kept). The ramps through a whole Release are in test_flags.py."""

from __future__ import annotations

import base64
import json

from models.flags import FlagChannel

DOCUMENT = {"$schema": "https://flagd.dev/schema/v0/flags.json",
            "flags": {"new-checkout": {"state": "ENABLED", "variants": {"on": True, "off": False},
                                       "defaultVariant": "off"}}}


def test_a_configmap_write_keeps_the_rest_of_the_configmap(local_cluster, kube_api, unique):
    """Only the flags key changes: other data keys, binaryData, labels and annotations survive."""
    from kubernetes import client as k8s

    from activities.targets.flag.configmap import ConfigMapBackend
    from activities.targets.flag.store import FlagdStore
    from activities.targets.kubernetes.client import KubeClients

    namespace = f"flagcm-{unique}"
    core = k8s.CoreV1Api(kube_api)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace)))
    logo = base64.b64encode(b"\x89PNG\x00\xff").decode()
    core.create_namespaced_config_map(namespace, k8s.V1ConfigMap(
        metadata=k8s.V1ObjectMeta(name="flagd", labels={"app": "checkout"}, annotations={"owner": "team-pay"}),
        data={"flags.json": json.dumps(DOCUMENT), "other.yaml": "a: 1\n"}, binary_data={"logo.png": logo}))
    channel = FlagChannel(config_map={"namespace": namespace, "name": "flagd"}, flag="new-checkout")
    clients = KubeClients(str(local_cluster.kubeconfig))
    try:
        FlagdStore(ConfigMapBackend(clients)).write(channel, "on", 500)
    finally:
        clients.close()
    after = core.read_namespaced_config_map("flagd", namespace)
    assert after.data["other.yaml"] == "a: 1\n"
    assert after.binary_data == {"logo.png": logo}
    assert after.metadata.labels == {"app": "checkout"}
    assert after.metadata.annotations == {"owner": "team-pay"}
    targeting = json.loads(after.data["flags.json"])["flags"]["new-checkout"]["targeting"]
    assert targeting == {"fractional": [["on", 500], ["off", 9500]]}
