"""Recorded pipeline scenarios, for tests/record_histories.py: the strategy children are the real
workflows, the cluster, registry and check activities fakes (tests/pipeline_helpers.py)."""

from __future__ import annotations

import asyncio

from temporalio.client import Client

from models.approvals import ApproveRequest
from models.pipeline import PipelineInput, target_name
from models.status import RolloutStatus
from tests.pipeline_helpers import FakeFleet, pipeline, stage

CHECK = {"name": "infra", "metric": {"name": "nodes", "successCondition": "result == 1",
                                     "provider": {"kubernetes": {"context": "prod-eu"}}}}


async def _run(client: Client, queue: str, document, approve: bool = False):
    handle = await client.start_workflow("Pipeline", PipelineInput(pipeline=document, requested_by="ci"),
                                         id=document.rollout_id, task_queue=queue, result_type=RolloutStatus)
    if approve:
        for _ in range(300):
            if (await handle.query("status", result_type=RolloutStatus)).approval is not None:
                break
            await asyncio.sleep(0.1)
        await handle.execute_update("approve", ApproveRequest(by="alice"))
    await handle.result()
    return handle


async def delivered(client: Client, queue: str):
    """Two stages: a check, a soak and an approval at the gate; prod in two rounds, then a second wave."""
    doc = pipeline("recorded-pipeline", "registry.local/web:2.0.0", [
        stage("staging", "shop", ["stg"]),
        stage("prod", "shop", [], bake="1s", gate={"checks": [CHECK], "soak": "1s", "approval": {}},
              waves=[{"targets": [{"context": "prod-eu"}, {"context": "prod-us"}, {"context": "prod-ap"}],
                      "maxParallel": 2}, {"targets": [{"context": "prod-sa"}]}]),
    ])
    return await _run(client, queue, doc, approve=True)


async def rolled_back(client: Client, queue: str):
    """The second prod cluster fails: failFast, the first one rolled back (onFailure: rollbackCompleted)."""
    doc = pipeline("recorded-pipeline-failed", "registry.local/web:2.0.0", [
        stage("prod", "shop", ["prod-eu", "prod-us", "prod-ap"], onFailure="rollbackCompleted")])
    return await _run(client, queue, doc)


async def named_by_pipeline(client: Client, queue: str):
    """Children named after the pipeline (patch pipeline-children-named-by-pipeline): two targets, one of
    them failing and the other rolled back, so starts, observations and the undo all carry the new IDs."""
    doc = pipeline("recorded-named", "registry.local/web:2.0.0", [
        stage("prod", "shop", ["prod-eu", "prod-us"], onFailure="rollbackCompleted")])
    handle = await _run(client, queue, doc)
    ended = await handle.result()
    ids = [t.workflow_id for w in ended.pipeline.stages[0].waves for t in w.targets]
    assert ids == [f"rollout/test/{target_name(doc.rollout_id, 'prod', t)}" for t in ("prod-eu", "prod-us")], ids
    assert all(i.startswith("rollout/test/recorded-named-prod-prod-") for i in ids), ids
    return handle


SCENARIOS = [
    ("pipeline-delivered", delivered, lambda: FakeFleet().activities()),
    ("pipeline-rolled-back", rolled_back, lambda: FakeFleet(bad=("prod-us",)).activities()),
    ("pipeline-children-named-by-pipeline", named_by_pipeline, lambda: FakeFleet(bad=("prod-us",)).activities()),
]
