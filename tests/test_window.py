"""Rollback window on the real cluster: after a Healthy rolling update the previous revision keeps
running, serving nothing; `rollout undo` switches the Service to it in one update (no pod starts),
then the Deployment goes back to that revision and the warm copy is removed. A window that runs out
removes its copy; a new rollout of the same ID closes the open window first."""

from __future__ import annotations

import time

from kubernetes import client

from models.status import RolloutStatus
from tests.cluster_view import expect_view, pod_names, service_images
from tests.test_cli import cli, wait_for  # noqa: F401 - the CLI fixture

OLD = "registry.local/web:1.0.0"


def deployments(api, namespace: str) -> list[str]:
    return sorted(d.metadata.name for d in client.AppsV1Api(api).list_namespaced_deployment(namespace).items)


def window_status(cli, rid: str) -> RolloutStatus:
    return RolloutStatus.model_validate_json(cli("status", f"{rid}/window", "--json").stdout)


def test_undo_through_the_window_switches_to_the_warm_copy(cli, workload, kube_api, unique):
    rid = f"rollout/test/win-{unique}"
    new = "registry.local/web:6.0.0"
    spec = cli.spec(name=f"win-{unique}", namespace=workload, deployment="web", image=new,
                    strategy={"rollingUpdate": {"maxSurge": 1}})
    import yaml
    document = yaml.safe_load(open(spec))
    document["spec"]["rollbackWindow"] = {"duration": "10m", "service": "web"}
    open(spec, "w").write(yaml.safe_dump(document))
    assert cli("start", "-f", spec, "--wait").returncode == 0
    wait_for(lambda: window_status(cli, rid).phase.value == "Paused", what="window open")
    assert deployments(kube_api, workload) == ["web", "web-warm-r1"]
    assert service_images(kube_api, workload, "web") == [new] * 4, "the warm copy serves nothing"
    warm_pods = pod_names(kube_api, workload, "web-warm-r1")
    assert len(warm_pods) == 4

    started = time.monotonic()
    undone = cli("undo", rid)
    assert undone.returncode == 0 and "switching back to revision 1" in undone.stdout, undone.stdout + undone.stderr
    wait_for(lambda: service_images(kube_api, workload, "web") == [OLD] * 4, timeout=20, what="switched back")
    assert time.monotonic() - started < 10
    assert pod_names(kube_api, workload, "web-warm-r1") == warm_pods, "no pod was started to switch back"
    assert cli("status", f"{rid}/window", "--watch", "--timeout", "90").returncode == 0
    final = window_status(cli, rid)
    assert (final.reason, final.stable_image) == ("RolledBack", OLD)
    assert deployments(kube_api, workload) == ["web"]
    selector = client.CoreV1Api(kube_api).read_namespaced_service("web", workload).spec.selector
    assert selector == {"app": "web"}


def test_a_new_rollout_closes_the_open_window(cli, workload, kube_api, unique):
    rid = f"rollout/test/win2-{unique}"
    import yaml

    def spec_for(image: str) -> str:
        path = cli.spec(name=f"win2-{unique}", namespace=workload, deployment="web", image=image,
                        strategy={"rollingUpdate": {"maxSurge": 1}})
        document = yaml.safe_load(open(path))
        document["spec"]["rollbackWindow"] = {"duration": "10m", "service": "web"}
        open(path, "w").write(yaml.safe_dump(document))
        return path

    assert cli("start", "-f", spec_for("registry.local/web:7.0.0"), "--wait").returncode == 0
    wait_for(lambda: window_status(cli, rid).phase.value == "Paused", what="window open")
    second = cli("start", "-f", spec_for("registry.local/web:7.1.0"), "--wait")
    assert second.returncode == 0 and f"closed the rollback window of {rid}" in second.stdout
    wait_for(lambda: deployments(kube_api, workload) == ["web", "web-warm-r2"], what="the new window's warm copy")
    images = client.AppsV1Api(kube_api).read_namespaced_deployment("web-warm-r2", workload).spec.template.spec.containers
    assert images[0].image == "registry.local/web:7.0.0"


def test_a_window_that_runs_out_removes_its_warm_copy(cli, workload, kube_api, unique):
    import yaml

    rid = f"rollout/test/win3-{unique}"
    path = cli.spec(name=f"win3-{unique}", namespace=workload, deployment="web", image="registry.local/web:8.0.0",
                    strategy={"rollingUpdate": {"maxSurge": 1}})
    document = yaml.safe_load(open(path))
    document["spec"]["rollbackWindow"] = {"duration": "3s", "service": "web"}
    open(path, "w").write(yaml.safe_dump(document))
    assert cli("start", "-f", path, "--wait").returncode == 0
    wait_for(lambda: cli("status", f"{rid}/window", "--json").returncode == 0, what="window started")
    assert cli("status", f"{rid}/window", "--watch", "--timeout", "90").returncode == 0
    final = window_status(cli, rid)
    assert final.message == "rollback window closed" and "warm" in [h.event for h in final.history]
    assert deployments(kube_api, workload) == ["web"]
    assert service_images(kube_api, workload, "web") == ["registry.local/web:8.0.0"] * 4
