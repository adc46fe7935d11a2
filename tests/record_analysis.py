"""Recorded analysis scenarios, for tests/record_histories.py: a canary whose analysis args read the pods'
template hashes (valueFrom.podTemplateHashValue), the cluster activities fakes."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client

from models.analysis import MeasureInput, Measurement
from models.kubernetes import KubernetesTarget
from starters.commands import start_workflow

HASHES = {"checkout-api": "5d8f7c9b4", "checkout-api-canary": "7b6c5d4f8"}  # Deployment -> its pods' hash


def hash_fakes() -> list:
    from tests.test_canary_workflow import FakeCluster

    @activity.defn(name="pod_template_hash")
    async def pod_template_hash(target: KubernetesTarget) -> str:
        return HASHES[target.deployment]

    @activity.defn(name="measure")
    async def measure(request: MeasureInput) -> Measurement:
        wanted = {"latest": HASHES["checkout-api-canary"], "stable": HASHES["checkout-api"]}
        return Measurement(phase="Successful" if request.args == wanted else "Failed", value=str(request.args))

    return [*FakeCluster().activities(), pod_template_hash, measure]


async def by_hash(client: Client, queue: str):
    """A canary's analysis step whose args are the canary's and the stable pods' template hashes."""
    from models.spec import parse_rollout
    from models.status import Phase
    from tests.helpers import canary_document

    latest, stable = ({"name": name, "valueFrom": {"podTemplateHashValue": role}}
                      for name, role in (("latest", "Latest"), ("stable", "Stable")))
    document = canary_document(name="recorded-by-hash", steps=[
        {"setWeight": 50}, {"analysis": {"templates": [{"templateName": "by-hash"}], "args": [latest, stable]}},
        {"setWeight": 100}])
    document["spec"]["analysis"] = {"templates": [{"name": "by-hash", "args": [{"name": "latest"}, {"name": "stable"}],
                                                   "metrics": [{"name": "selected", "successCondition": "True",
                                                                "provider": {"web": {
                                                                    "url": "http://127.0.0.1:9/{{args.latest}}"}}}]}]}
    handle = await start_workflow(client, parse_rollout(document), queue, "recorder")
    final = await handle.result()
    assert final.phase is Phase.HEALTHY, final.message
    return handle


SCENARIOS = [("canary-analysed-by-hash", by_hash, hash_fakes)]
