"""Faults that must *not* be survived by retrying: a Prometheus answering NaN or nothing (judged by
the metric's `emptyResult`), bad cluster credentials, an admission webhook denying a write. Each ends
the rollout at once with the reason named, and the cluster back as it was.
(Prometheus gone for good is tests/test_analysis_cluster.py; pods never ready or crash-looping are
tests/test_canary_cluster.py; the transient faults are the matrix, tests/test_matrix.py.)"""

from __future__ import annotations

import json
import time

import pytest
from kubernetes import client
from temporalio.api.enums.v1 import EventType

from localcluster.faultproxy import PROMETHEUS_FAULTS, FaultProxy
from models.status import Phase, RolloutStatus
from starters.commands import start_workflow
from tests.cluster_view import expect_view
from tests.helpers import finished
from tests.matrix import rollout

OLD = "registry.local/web:1.0.0"


def attempts(history) -> list[int]:
    """The attempt number of every activity task started, in order."""
    return [e.activity_task_started_event_attributes.attempt for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED]


@pytest.mark.parametrize("answer", ["nan", "empty"])
async def test_no_data_from_prometheus_follows_empty_result(answer, dev_client, cluster_worker, kube_api, workload,
                                                           prometheus, unique):
    """`emptyResult: failed`: NaN or an empty vector fails the analysis and the canary rolls back by itself."""
    with FaultProxy(prometheus.url, kinds=PROMETHEUS_FAULTS, rate=1.0).start() as proxy, proxy.faults(1.0, [answer]):
        provider = {"prometheus": {"address": proxy.url, "query": "count(up == 1)", "emptyResult": "failed"}}
        new = f"registry.local/web:nodata-{unique}"
        spec = rollout("canary", unique, workload, new, proxy.url, provider=provider)
        final: RolloutStatus = await finished(await start_workflow(dev_client, spec, cluster_worker, "test"), 120)
    assert (final.phase, final.reason) == (Phase.DEGRADED, "AnalysisFailed"), final.message
    measured = final.analysis[0].measurements
    assert measured and all(m.phase == "Failed" and m.message.startswith("no data") for m in measured), measured
    await expect_view(kube_api, workload, (4, 4, OLD), (0, 0, new), [OLD] * 4)  # the canary kept at zero


async def test_bad_credentials_fail_fast_naming_the_cause(dev_server, dev_client, local_cluster, workload,
                                                        worker_processes, unique, tmp_path):
    """A 401 is permanent: one attempt, then Degraded saying Unauthorized — not minutes of retries."""
    config = json.loads(local_cluster.kubeconfig.read_text())
    config["users"][0]["user"]["token"] = "revoked-token"
    bad = tmp_path / "kubeconfig-revoked"
    bad.write_text(json.dumps(config))
    queue = f"creds-{unique}"
    worker_processes(dev_server.address, queue, kubeconfig=bad)
    spec = rollout("canary", unique, workload, f"registry.local/web:creds-{unique}", "http://127.0.0.1:9")
    started = time.monotonic()
    handle = await start_workflow(dev_client, spec, queue, "test")
    final: RolloutStatus = await finished(handle, 60)
    assert final.phase is Phase.DEGRADED and "Unauthorized" in final.message, final.message
    assert time.monotonic() - started < 20
    assert set(attempts(await handle.fetch_history())) == {1}, "no activity was retried"


async def test_an_admission_denial_is_not_retried(dev_server, dev_client, local_cluster, kube_api, workload,
                                                  worker_processes, unique, tmp_path):
    """A policy webhook denies the first write: the rollout ends Degraded with the webhook's words after
    exactly one try, and nothing of the new version is left behind."""
    with local_cluster.fault_proxy(rate=0.0) as proxy, proxy.faults(1.0, ["denied"], limit=1):
        kubeconfig = local_cluster.kubeconfig_through(proxy.url, tmp_path / "kubeconfig-policy")
        queue = f"denied-{unique}"
        worker_processes(dev_server.address, queue, kubeconfig=kubeconfig)
        spec = rollout("canary", unique, workload, f"registry.local/web:denied-{unique}", "http://127.0.0.1:9")
        final: RolloutStatus = await finished(await start_workflow(dev_client, spec, queue, "test"), 60)
    assert proxy.counts["denied"] == 1
    assert final.phase is Phase.DEGRADED and "denied the request" in final.message, final.message
    assert [d.metadata.name for d in client.AppsV1Api(kube_api).list_namespaced_deployment(workload).items] == ["web"]
    await expect_view(kube_api, workload, (4, 4, OLD), None, [OLD] * 4)
