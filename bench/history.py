"""How long the histories of the longest-lived rollouts grow, over a simulated month and year (the
time-skipping test server; the Kubernetes activities and measurements short-circuited).

    python -m bench.history [--days 30,365]

(a) a canary left at `pause: {}` with a background analysis measuring every hour;
(b) a canary waiting at an approval that reminds its channel every hour.
Each continues as new at the server's suggestion or at 10,000 events (the default); printed: the runs,
the longest run's events and the events in all, per simulated period, with the longest run as a share
of Temporal's 50,000-event limit.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
from datetime import timedelta

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from bench.overhead import abort, prepare, promote, set_weight
from bench.scale import rollout_document
from localcluster.devserver import binary
from models.analysis import MeasureInput, Measurement
from models.notifications import NotifyInput
from models.spec import parse_rollout
from models.status import RolloutInput
from workers.temporal import ensure_search_attributes
from workflows.canary import CanaryRollout

LIMIT = 50_000
ANALYSIS = {"templates": [{"name": "watch", "metrics": [{
    "name": "ok", "interval": "1h", "successCondition": "result[0] > 0",
    "provider": {"prometheus": {"address": "http://prometheus.invalid", "query": "up"}}}]}]}


@activity.defn(name="measure")
def measure(request: MeasureInput) -> Measurement:
    return Measurement(phase="Successful", value="[1]", query="up")


@activity.defn(name="notify")
def notify(note: NotifyInput) -> list[str]:
    return note.channels


def scenario(kind: str, days: int) -> RolloutInput:
    if kind == "analysis":
        document = rollout_document(f"analysed-{days}d")
        document["spec"]["analysis"] = ANALYSIS
        document["spec"]["strategy"]["canary"]["analysis"] = {"templates": [{"templateName": "watch"}],
                                                              "startingStep": 1}
    else:
        document = rollout_document(f"approval-{days}d", [{"setWeight": 10}, {"approval": {
            "description": "go on", "remindEvery": "1h"}}, {"setWeight": 100}])
        document["spec"]["notifications"] = [{"channel": "releases", "minSeverity": "info"}]
    return RolloutInput(rollout=parse_rollout(document), requested_by="bench")


async def runs_of(env: WorkflowEnvironment, workflow_id: str, run_id: str) -> list[int]:
    lengths = []
    while run_id:
        history = await env.client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        lengths.append(len(history.events))
        last = history.events[-1]
        run_id = (last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
                  if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW else "")
    return lengths


async def main(periods: list[int]) -> None:
    env = await WorkflowEnvironment.start_time_skipping(data_converter=pydantic_data_converter,
                                                        test_server_existing_path=binary("temporal-test-server"))
    await ensure_search_attributes(env.client, "default")
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            async with Worker(env.client, task_queue="history", workflows=[CanaryRollout], activity_executor=pool,
                              activities=[prepare, set_weight, promote, abort, measure, notify]):
                for kind in ("analysis", "approval"):
                    for days in periods:
                        request = scenario(kind, days)
                        handle = await env.client.start_workflow(CanaryRollout.run, request, id=f"{kind}-{days}",
                                                                 task_queue="history")
                        for _ in range(days // 10):  # in slices: one long sleep's RPC would time out
                            await env.sleep(timedelta(days=10))
                        await env.sleep(timedelta(days=days % 10))
                        lengths = await runs_of(env, handle.id, handle.first_execution_run_id)
                        print(f"{kind:>8}, {days:>3} days: {len(lengths)} runs, longest {max(lengths)} events "
                              f"({max(lengths) / LIMIT:.2f} of the {LIMIT:,} limit), {sum(lengths)} in all",
                              flush=True)
                        await handle.terminate("benchmark over")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", default="30,365")
    args = parser.parse_args()
    asyncio.run(main([int(d) for d in args.days.split(",")]))
