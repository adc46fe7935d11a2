"""DaemonSets rolled as a canary node by node, on the real API server and the real DaemonSet controller
(kube-controller-manager v1.20.2), over six nodes the fake kubelet runs (two zones, two labelled as canary
nodes): three waves — the canary nodes, then half, then the rest — each node's pod replaced and Ready
before the step ends; a wave that fails (a version never Ready) rolls the updated nodes back; a pod on a
node tainted since is never deleted (the controller would not put one back there); the update strategy
the DaemonSet had is put back."""

from __future__ import annotations

import pytest
from kubernetes import client

from localcluster.behaviour import declare_images
from localcluster.workload import add_nodes, deploy_daemon_set
from models.spec import parse_rollout
from models.status import Phase, PromoteRequest
from starters.commands import start_workflow
from tests.helpers import canary_document, finished, paused_at, read_audit

OLD = "registry.local/agent:1.0.0"


def nodes_of(unique: str) -> dict[str, dict[str, str]]:
    pool = {"pool": f"agents-{unique}"}
    return {f"fake-node-{unique}-{i}": {**pool, "topology.kubernetes.io/zone": f"zone-{'ab'[i % 2]}",
                                        **({"rollouts.durable.dev/canary": "true"} if i in (4, 5) else {})}
            for i in range(1, 7)}


def daemon_rollout(name: str, namespace: str, image: str, steps: list[dict], deadline: int = 60):
    document = canary_document(name=name, namespace=namespace, image=image, steps=steps,
                               progress_deadline_seconds=deadline)
    document["spec"]["target"]["kubernetes"] = {
        "context": "local", "namespace": namespace, "daemonSet": "agent",
        "nodes": {"first": {"rollouts.durable.dev/canary": "true"}, "maxUnavailable": 2}}
    document["spec"]["strategy"] = {"canary": {"steps": steps}}
    return parse_rollout(document)


def images_by_node(core: client.CoreV1Api, namespace: str) -> dict[str, str]:
    return {p.spec.node_name: p.spec.containers[0].image
            for p in core.list_namespaced_pod(namespace, label_selector="app=agent").items
            if p.metadata.deletion_timestamp is None and p.spec.node_name}


@pytest.fixture
def agents(kube_api, unique):
    nodes = nodes_of(unique)
    add_nodes(kube_api, nodes)
    namespace = f"ds-{unique}"
    deploy_daemon_set(kube_api, namespace, "agent", OLD, node_selector={"pool": f"agents-{unique}"})
    yield namespace, sorted(nodes)
    core = client.CoreV1Api(kube_api)
    core.delete_namespace(namespace, propagation_policy="Background")
    for name in nodes:
        core.delete_node(name)


async def test_three_node_waves_canary_nodes_first(dev_client, cluster_worker, agents, kube_api, local_cluster, unique):
    namespace, nodes = agents
    core, apps = client.CoreV1Api(kube_api), client.AppsV1Api(kube_api)
    new = f"registry.local/agent:2.0.0-{unique}"
    canary = [n for n in nodes if n.endswith(("-4", "-5"))]
    rollout = daemon_rollout(f"agent-{unique}", namespace, new, [
        {"setWeight": 33}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}, {"setWeight": 100}])
    handle = await start_workflow(dev_client, rollout, cluster_worker, "test")

    status = await paused_at(handle, 1, timeout=90)
    assert (status.canary_replicas, status.stable_replicas) == (2, 4)
    view = images_by_node(core, namespace)
    assert {n for n, image in view.items() if image == new} == set(canary), view
    assert apps.read_namespaced_daemon_set("agent", namespace).spec.update_strategy.type == "OnDelete"

    await handle.execute_update("promote", PromoteRequest(by="alice"))
    status = await paused_at(handle, 3, timeout=90)
    assert (status.canary_replicas, status.stable_replicas) == (3, 3)
    view = images_by_node(core, namespace)
    first_other = sorted(set(nodes) - set(canary))[0]
    assert {n for n, image in view.items() if image == new} == {*canary, first_other}, view

    await handle.execute_update("promote", PromoteRequest(by="alice"))
    final = await finished(handle, 90)
    assert final.phase is Phase.HEALTHY, final.message
    assert images_by_node(core, namespace) == {n: new for n in nodes}
    ds = apps.read_namespaced_daemon_set("agent", namespace)
    assert ds.spec.update_strategy.type == "RollingUpdate", "the strategy it had, put back"
    assert not any(k.startswith("rollouts.durable.dev/") for k in ds.metadata.annotations or {})
    deletes = [(row["at"], name) for name in _pods_deleted(local_cluster.audit_log, namespace)
               for row in read_audit(local_cluster.audit_log, namespace, name, resource="pods") if row["verb"] == "delete"]
    assert len(deletes) == 6, "each node's pod replaced once"


def _pods_deleted(audit_log, namespace: str) -> set[str]:
    import json

    names = set()
    with open(audit_log) as log:
        for line in log:
            event = json.loads(line)
            ref = event.get("objectRef", {})
            if ref.get("resource") == "pods" and ref.get("namespace") == namespace and event.get("verb") == "delete":
                names.add(ref.get("name"))
    return names


async def test_a_wave_that_never_gets_ready_rolls_the_updated_nodes_back(
    dev_client, cluster_worker, agents, kube_api, unique
):
    namespace, nodes = agents
    core, apps = client.CoreV1Api(kube_api), client.AppsV1Api(kube_api)
    bad = f"registry.local/agent:3.0.0-{unique}"
    declare_images(core, {bad: {"ready": "never"}})
    rollout = daemon_rollout(f"agent-bad-{unique}", namespace, bad, [{"setWeight": 33}, {"setWeight": 100}], deadline=10)
    handle = await start_workflow(dev_client, rollout, cluster_worker, "test")
    final = await finished(handle, 120)
    assert final.phase is Phase.DEGRADED and final.reason == "ProgressDeadlineExceeded", final.message
    assert "not moved after" in final.message and "is not ready" in final.message, final.message
    assert images_by_node(core, namespace) == {n: OLD for n in nodes}, "every updated node back on the old version"
    ds = apps.read_namespaced_daemon_set("agent", namespace)
    assert ds.spec.update_strategy.type == "RollingUpdate"
    assert ds.status.number_ready == 6


async def test_a_pod_on_a_node_tainted_since_is_never_deleted(dev_client, cluster_worker, agents, kube_api, unique):
    namespace, nodes = agents
    core = client.CoreV1Api(kube_api)
    tainted = nodes[0]
    core.patch_node(tainted, {"spec": {"taints": [{"key": "maintenance", "value": "true", "effect": "NoSchedule"}]}})
    new = f"registry.local/agent:4.0.0-{unique}"
    rollout = daemon_rollout(f"agent-t-{unique}", namespace, new, [{"setWeight": 100}], deadline=10)
    final = await finished(await start_workflow(dev_client, rollout, cluster_worker, "test"), 120)
    assert final.phase is Phase.DEGRADED and final.reason == "ProgressDeadlineExceeded", final.message
    assert f"the pod on {tainted} is on revision" in final.message and "NotReady or tainted: not replaced" in \
        final.message, final.message
    assert images_by_node(core, namespace) == {n: OLD for n in nodes}, "its pod kept; the others back"


@pytest.mark.parametrize(("target", "strategy", "problem"), [
    ({"daemonSet": "agent"}, {"rollingUpdate": {}}, "spec.strategy.rollingUpdate: a DaemonSet rolls as a canary node by node"),
    ({"daemonSet": "agent"}, {"canary": {"steps": [{"setWeight": 50}], "trafficRouting": {"nginx": {"stableIngress": "a"}}}},
     "spec.strategy.canary.trafficRouting.nginx: a DaemonSet's pods share its Service"),
    ({"daemonSet": "agent", "nodes": {"maxUnavailable": 0}}, {"canary": {"steps": [{"setWeight": 50}]}},
     "spec.target.kubernetes.nodes.maxUnavailable"),
    ({"deployment": "web", "nodes": {"first": {"zone": "a"}}}, {"canary": {"steps": [{"setWeight": 50}]}},
     "this target rolls no DaemonSet"),
    ({"daemonSet": "agent", "statefulSet": "db"}, {"canary": {"steps": [{"setWeight": 50}]}},
     "name exactly one workload: deployment, statefulSet or daemonSet"),
])
def test_what_a_daemon_set_cannot_take_is_refused_naming_the_field(target, strategy, problem):
    from models.spec import SpecError

    document = canary_document(name="agent", namespace="ops", image="registry.local/agent:2.0.0")
    document["spec"]["target"]["kubernetes"] = {"namespace": "ops", **target}
    document["spec"]["strategy"] = strategy
    with pytest.raises(SpecError) as refused:
        parse_rollout(document)
    assert problem in str(refused.value), str(refused.value)
