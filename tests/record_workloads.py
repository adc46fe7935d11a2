"""Recorded Kubernetes workload scenarios beside the Deployment, for tests/record_histories.py: a StatefulSet's
canary by its partition promoted (by update, then by the Web UI's signal), and one aborted mid-way. The
StatefulSet activities are faked by name (replay runs no activity); the workflow is the canary's."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client

from models.delivery import PrepareCanaryResult, WeightResult
from models.kubernetes import StatefulSetInput
from models.spec import parse_rollout
from models.workloads import updated_ordinals
from tests.helpers import aborted_at, canary_document, promoted_then_signalled


def stateful_set_rollout(name: str, steps: list[dict]):
    document = canary_document(name=name, namespace="data", image="registry.local/db:2.0.0", steps=steps)
    document["spec"]["target"]["kubernetes"] = {"context": "local", "namespace": "data", "statefulSet": "db"}
    document["spec"]["strategy"] = {"canary": {"steps": steps}}
    return parse_rollout(document)


def stateful_set_fakes() -> list:
    @activity.defn(name="prepare_stateful_canary")
    async def prepare(request: StatefulSetInput) -> PrepareCanaryResult:
        return PrepareCanaryResult(total_replicas=3, stable_image="registry.local/db:1.0.0", container="app")

    @activity.defn(name="set_stateful_partition")
    async def partition(request: StatefulSetInput) -> WeightResult:
        assert request.updated == updated_ordinals(request.weight, 3)
        return WeightResult(weight=request.weight, canary_replicas=request.updated, stable_replicas=3 - request.updated,
                            actual_weight=100 * request.updated / 3, changed=True)

    @activity.defn(name="promote_stateful_canary")
    async def promote(request: StatefulSetInput) -> None:
        assert request.stable_image == "registry.local/db:1.0.0"

    @activity.defn(name="abort_stateful_canary")
    async def abort(request: StatefulSetInput) -> None:
        assert request.stable_image == "registry.local/db:1.0.0"

    return [prepare, partition, promote, abort]


async def stateful_set_promoted(client: Client, queue: str):
    rollout = stateful_set_rollout("recorded-statefulset-canary", [
        {"setWeight": 33}, {"pause": {}}, {"setWeight": 66}, {"pause": {}}, {"setWeight": 100}])
    return await promoted_then_signalled(client, rollout, queue, 1, 3)


async def stateful_set_aborted(client: Client, queue: str):
    rollout = stateful_set_rollout("recorded-statefulset-aborted", [{"setWeight": 66}, {"pause": {}}])
    return await aborted_at(client, rollout, queue, 1, "replication lag")


SCENARIOS = [
    ("statefulset-canary-promoted", stateful_set_promoted, stateful_set_fakes),
    ("statefulset-canary-aborted", stateful_set_aborted, stateful_set_fakes),
]
