"""Recorded Kubernetes workload scenarios beside the Deployment, for tests/record_histories.py: a StatefulSet's
canary by its partition promoted (by update, then by the Web UI's signal), one aborted mid-way, and a
DaemonSet's node waves promoted and aborted. The workload activities are faked by name (replay runs no activity);
the workflow is the canary's."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client

from models.delivery import PrepareCanaryResult, WeightResult
from models.kubernetes import WorkloadInput
from models.spec import parse_rollout
from models.workloads import updated_ordinals
from tests.helpers import aborted_at, canary_document, promoted_then_signalled


def workload_rollout(name: str, steps: list[dict], workload: dict):
    document = canary_document(name=name, namespace="data", image="registry.local/db:2.0.0", steps=steps)
    document["spec"]["target"]["kubernetes"] = {"context": "local", "namespace": "data", **workload}
    document["spec"]["strategy"] = {"canary": {"steps": steps}}
    return parse_rollout(document)


def stateful_set_rollout(name: str, steps: list[dict]):
    return workload_rollout(name, steps, {"statefulSet": "db"})


def in_place_fakes(prepare_name: str, move_name: str, promote_name: str, abort_name: str, total: int):
    """The four activities of a workload updated in place, by name: `total` ordinals or nodes."""
    @activity.defn(name=prepare_name)
    async def prepare(request: WorkloadInput) -> PrepareCanaryResult:
        return PrepareCanaryResult(total_replicas=total, stable_image="registry.local/db:1.0.0", container="app")

    @activity.defn(name=move_name)
    async def move(request: WorkloadInput) -> WeightResult:
        assert request.updated == updated_ordinals(request.weight, total)
        return WeightResult(weight=request.weight, canary_replicas=request.updated,
                            stable_replicas=total - request.updated, actual_weight=100 * request.updated / total,
                            changed=True)

    @activity.defn(name=promote_name)
    async def promote(request: WorkloadInput) -> None:
        assert request.stable_image == "registry.local/db:1.0.0"

    @activity.defn(name=abort_name)
    async def abort(request: WorkloadInput) -> None:
        assert request.stable_image == "registry.local/db:1.0.0"

    return [prepare, move, promote, abort]


def stateful_set_fakes() -> list:
    return in_place_fakes("prepare_stateful_canary", "set_stateful_partition", "promote_stateful_canary",
                          "abort_stateful_canary", 3)


def daemon_set_fakes() -> list:
    return in_place_fakes("prepare_daemon_canary", "set_daemon_nodes", "promote_daemon_canary",
                          "abort_daemon_canary", 6)


async def stateful_set_promoted(client: Client, queue: str):
    rollout = stateful_set_rollout("recorded-statefulset-canary", [
        {"setWeight": 33}, {"pause": {}}, {"setWeight": 66}, {"pause": {}}, {"setWeight": 100}])
    return await promoted_then_signalled(client, rollout, queue, 1, 3)


async def stateful_set_aborted(client: Client, queue: str):
    rollout = stateful_set_rollout("recorded-statefulset-aborted", [{"setWeight": 66}, {"pause": {}}])
    return await aborted_at(client, rollout, queue, 1, "replication lag")


async def daemon_set_waves(client: Client, queue: str):
    rollout = workload_rollout("recorded-daemonset-waves", [
        {"setWeight": 33}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}, {"setWeight": 100}],
        {"daemonSet": "agent", "nodes": {"first": {"rollouts.durable.dev/canary": "true"}, "maxUnavailable": 2}})
    return await promoted_then_signalled(client, rollout, queue, 1, 3)


async def daemon_set_aborted(client: Client, queue: str):
    rollout = workload_rollout("recorded-daemonset-aborted", [{"setWeight": 33}, {"pause": {}}, {"setWeight": 100}],
                               {"daemonSet": "agent"})
    return await aborted_at(client, rollout, queue, 1, "agent crash loops on the canary nodes")


SCENARIOS = [
    ("statefulset-canary-promoted", stateful_set_promoted, stateful_set_fakes),
    ("statefulset-canary-aborted", stateful_set_aborted, stateful_set_fakes),
    ("daemonset-waves-promoted", daemon_set_waves, daemon_set_fakes),
    ("daemonset-wave-aborted", daemon_set_aborted, daemon_set_fakes),
]
