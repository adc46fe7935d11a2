"""`rollout undo [--to-revision N]` and `rollout restart` through the CLI on the real cluster: an undo
reuses the ReplicaSet the Deployment kept (no rebuild); a blue-green still keeping the previous
version warm switches back at once."""

from __future__ import annotations

from kubernetes import client

from models.status import RolloutStatus
from tests.cluster_view import pod_names, service_images
from tests.test_cli import cli, wait_for  # noqa: F401 - the CLI fixture

OLD = "registry.local/web:1.0.0"


def replica_sets(api, namespace: str) -> dict[str, str]:
    """ReplicaSet name -> image, for Deployment web."""
    listed = client.AppsV1Api(api).list_namespaced_replica_set(namespace, label_selector="app=web").items
    return {rs.metadata.name: rs.spec.template.spec.containers[0].image for rs in listed}


def image(api, namespace: str) -> str:
    return client.AppsV1Api(api).read_namespaced_deployment("web", namespace).spec.template.spec.containers[0].image


def test_undo_to_previous_and_to_revision_then_restart(cli, workload, kube_api, unique):
    rid = f"rollout/test/undo-{unique}"
    for version in ("2.0.0", "3.0.0"):
        spec = cli.spec(name=f"undo-{unique}", namespace=workload, deployment="web",
                        image=f"registry.local/web:{version}", strategy={"rollingUpdate": {"maxSurge": 1}})
        assert cli("start", "-f", spec, "--wait").returncode == 0
    kept = replica_sets(kube_api, workload)
    assert sorted(kept.values()) == [OLD, "registry.local/web:2.0.0", "registry.local/web:3.0.0"]

    undone = cli("undo", rid, "--wait")
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert image(kube_api, workload) == "registry.local/web:2.0.0"
    assert replica_sets(kube_api, workload) == kept, "the kept ReplicaSet came back: nothing was rebuilt"
    status = RolloutStatus.model_validate_json(cli("status", rid, "--json").stdout)
    assert (status.strategy, status.phase.value, status.image) == ("undo", "Healthy", "registry.local/web:2.0.0")

    assert cli("undo", rid, "--to-revision", "1", "--wait").returncode == 0
    assert image(kube_api, workload) == OLD
    missing = cli("undo", rid, "--to-revision", "99", "--wait")
    assert missing.returncode == 1 and "no earlier revision 99" in missing.stdout + missing.stderr
    assert cli("undo", rid, "--to-revision", "-2").returncode == 2

    before = pod_names(kube_api, workload, "web")
    assert cli("restart", rid, "--wait").returncode == 0
    after = pod_names(kube_api, workload, "web")
    assert len(after) == 4 and not before & after, "every pod was replaced"
    assert image(kube_api, workload) == OLD and service_images(kube_api, workload, "web") == [OLD] * 4
    assert cli("undo", "rollout/test/never-started").returncode == 4


def test_undo_of_a_warm_blue_green_switches_back(cli, workload, kube_api, unique):
    rid = f"rollout/test/bgundo-{unique}"
    spec = cli.spec(name=f"bgundo-{unique}", namespace=workload, deployment="web", image="registry.local/web:5.0.0",
                    strategy={"blueGreen": {"activeService": "web", "previewService": "web-preview",
                                            "scaleDownDelaySeconds": 600, "abortScaleDownDelaySeconds": 0}})
    assert cli("start", "-f", spec).returncode == 0
    wait_for(lambda: RolloutStatus.model_validate_json(cli("status", rid, "--json").stdout).canary_weight == 100,
             what="switched to the new version")
    old_pods = pod_names(kube_api, workload, "web")
    undone = cli("undo", rid, "--wait")
    assert undone.returncode == 1, "the blue-green ends Degraded (switched back)"
    assert "switching" in undone.stdout
    assert service_images(kube_api, workload, "web") == [OLD] * 4
    assert pod_names(kube_api, workload, "web") == old_pods
