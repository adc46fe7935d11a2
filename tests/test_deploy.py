"""The worker's manifests (deploy/): each overlay rendered by `kubectl kustomize` has what production
needs; the prod overlay passes a server-side dry run and the dev overlay is applied to the real local
kube-apiserver (RBAC authorization on); a worker whose Kubernetes credentials are the manifests'
ServiceAccount's own token (TokenRequest) runs a canary in a namespace the overlay binds, and is
refused in one it does not — the audit log names the ServiceAccount as the writer."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ConflictError

from localcluster.workload import deploy
from models.status import Phase
from starters.commands import start_workflow
from tests.conftest import in_process_worker
from tests.helpers import canary_rollout, finished

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
WORKER_NAMESPACE, SERVICE_ACCOUNT = "durable-rollouts", "rollout-worker"
USER = f"system:serviceaccount:{WORKER_NAMESPACE}:{SERVICE_ACCOUNT}"
GRACEFUL_SHUTDOWN = 10  # workers/options.py


def render(overlay: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with kustomize) comes from scripts/setup"
    done = subprocess.run([kubectl, "kustomize", str(DEPLOY / "overlays" / overlay)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def one(docs: list[dict], kind: str, name: str) -> dict:
    [found] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_each_overlay_renders_what_production_needs(overlay):
    docs = render(overlay)
    worker = one(docs, "Deployment", "rollout-worker")
    pod = worker["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert pod["spec"]["serviceAccountName"] == SERVICE_ACCOUNT
    assert pod["spec"]["terminationGracePeriodSeconds"] > GRACEFUL_SHUTDOWN + 10, "SIGTERM drains before SIGKILL"
    assert container["readinessProbe"]["httpGet"]["path"] == "/metrics"
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys() and container["resources"]["limits"]["memory"]
    port = next(p["containerPort"] for p in container["ports"] if p["name"] == "metrics")
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port) and str(port) in container["args"]
    secret = next(v for v in pod["spec"]["volumes"] if "secret" in v)
    assert any(m["name"] == secret["name"] and m["readOnly"] for m in container["volumeMounts"])
    assert container["securityContext"]["readOnlyRootFilesystem"] and pod["spec"]["securityContext"]["runAsNonRoot"]
    settings = one(docs, "ConfigMap", "rollout-worker")["data"]
    assert settings["ROLLOUT_METRICS_ADDRESS"] == "0.0.0.0" and "KEY" not in "".join(
        k for k in settings if not k.endswith("_FILE"))  # secrets as files, never values
    budget = one(docs, "PodDisruptionBudget", "rollout-worker")
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert budget["spec"]["minAvailable"] < worker["spec"]["replicas"]
    target = one(docs, "ClusterRole", "durable-rollouts-target")
    for rule in target["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "secrets" not in rule["resources"]
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    assert bindings and all(b["roleRef"]["name"] == "durable-rollouts-target"
                            and b["metadata"]["namespace"] != WORKER_NAMESPACE for b in bindings)
    read = one(docs, "ClusterRole", "durable-rollouts-read")
    assert {v for r in read["rules"] for v in r["verbs"]} == {"get", "list"}
    if overlay == "prod":
        stores = one(docs, "Deployment", "rollout-stores-worker")["spec"]["template"]["spec"]
        assert "--targets=stores" in stores["containers"][0]["args"]
        assert one(docs, "ServiceAccount", "rollout-stores-worker")["automountServiceAccountToken"] is False
        assert worker["spec"]["replicas"] == 3


def _for_this_apiserver(doc: dict) -> dict:
    """The local kube-apiserver is v1.20: PodDisruptionBudget is policy/v1beta1 there (same fields)."""
    if doc["kind"] == "PodDisruptionBudget":
        return {**doc, "apiVersion": "policy/v1beta1"}
    return doc


def apply(api: client.ApiClient, docs: list[dict], dry_run: str | None = None) -> None:
    """Create each object through the API discovered from the server (as kubectl does); one that exists is kept."""
    resources = DynamicClient(api).resources
    for doc in map(_for_this_apiserver, docs):
        kind = resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        try:
            kind.create(body=doc, namespace=doc["metadata"].get("namespace"),
                        query_params=[("dryRun", dry_run)] if dry_run else [])
        except ConflictError:
            pass


async def test_a_rollout_runs_under_the_manifests_rbac(kube_api, local_cluster, dev_client, unique, tmp_path):
    core = client.CoreV1Api(kube_api)
    for name in (WORKER_NAMESPACE, "shop", "payments"):  # a dry run needs the namespaces to exist
        apply(kube_api, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}])
    apply(kube_api, [d for d in render("prod") if d["kind"] != "Namespace"], dry_run="All")

    bound, unbound = f"t-{unique}", f"u-{unique}"
    for namespace in (bound, unbound):
        deploy(kube_api, namespace, "web", "registry.local/web:1.0.0", replicas=2, rps=50)
    dev = render("dev")
    for doc in dev:  # the overlay's target namespace, here the test's own
        if doc["kind"] == "RoleBinding":
            doc["metadata"]["namespace"] = bound
    apply(kube_api, dev)

    token = core.create_namespaced_service_account_token(SERVICE_ACCOUNT, WORKER_NAMESPACE, client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))).status.token
    config = json.loads(local_cluster.kubeconfig.read_text())
    config["users"][0]["user"] = {"token": token}
    kubeconfig = tmp_path / "worker-kubeconfig"
    kubeconfig.write_text(json.dumps(config))

    async with in_process_worker(dev_client, f"rbac-{unique}", kubeconfig) as queue:
        allowed = await start_workflow(dev_client, canary_rollout(
            name=f"web-{unique}", namespace=bound, deployment="web", image="registry.local/web:2.0.0",
            steps=[{"setWeight": 50}, {"setWeight": 100}]), queue, "test")
        refused = await start_workflow(dev_client, canary_rollout(
            name=f"other-{unique}", namespace=unbound, deployment="web", image="registry.local/web:2.0.0",
            steps=[{"setWeight": 50}, {"setWeight": 100}]), queue, "test")
        done, denied = await finished(allowed, 90), await finished(refused, 90)
    assert done.phase is Phase.HEALTHY
    assert denied.phase is Phase.DEGRADED and "forbidden" in denied.message.lower(), denied.message
    assert f'"{USER}"' in denied.message or USER in denied.message

    writes = []
    with open(local_cluster.audit_log) as log:
        for line in log:
            event = json.loads(line)
            ref = event.get("objectRef", {})
            if event.get("stage") == "ResponseComplete" and ref.get("namespace") in (bound, unbound) \
                    and event["verb"] in ("create", "patch", "update", "delete"):
                writes.append((event["user"]["username"], ref.get("namespace"), ref.get("resource"),
                               event["responseStatus"]["code"]))
    ours = [w for w in writes if w[0] == USER]
    assert any(ns == bound and resource == "deployments" and code < 300 for _, ns, resource, code in ours), writes
    assert not any(ns == unbound and code < 300 for _, ns, _, code in ours), "nothing written where it is not bound"
