"""Upgrading the engine while rollouts run (README, "Upgrading the engine"): a canary started on today's
code waits at a pause; its worker shuts down; a worker with new code — a change that adds a timer at
every step boundary, guarded by `workflow.patched` — takes over, and the rollout finishes on the new
worker: its recorded steps replay unchanged and, since its first boundary ran without the patch, it
keeps the old path to the end (the SDK remembers a patch absent for the rest of the run); a rollout
started after the upgrade takes the new one. The same change without the guard cannot replay the
paused rollout's history."""

from __future__ import annotations

import concurrent.futures
from datetime import timedelta

from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, Worker

from models.approvals import PromoteRequest
from models.status import Phase, RolloutInput, RolloutStatus
from starters.commands import start_workflow
from tests.helpers import canary_rollout, finished, paused_at
from tests.test_canary_workflow import FakeCluster
from workflows.canary import CanaryRollout

PATCH = "settle-at-step-boundaries"


def _with_a_timer_at_each_boundary(rollout: CanaryRollout, guarded: bool) -> None:
    original = rollout.control.step_gate

    async def step_gate(index: int) -> None:
        if not guarded or workflow.patched(PATCH):
            await workflow.sleep(timedelta(milliseconds=50), summary="settle")
        await original(index)

    rollout.control.step_gate = step_gate  # type: ignore[method-assign]


@workflow.defn(name="CanaryRollout", sandboxed=False)  # defined in a test module: no sandbox
class CanaryNext(CanaryRollout):
    """The next release of the canary workflow, its change guarded."""

    @workflow.init
    def __init__(self, request: RolloutInput) -> None:
        super().__init__(request)
        _with_a_timer_at_each_boundary(self, guarded=True)

    @workflow.run
    async def run(self, request: RolloutInput) -> RolloutStatus:
        return await super().run(request)


@workflow.defn(name="CanaryRollout", sandboxed=False)
class CanaryCareless(CanaryRollout):
    """The same change without the guard."""

    @workflow.init
    def __init__(self, request: RolloutInput) -> None:
        super().__init__(request)
        _with_a_timer_at_each_boundary(self, guarded=False)

    @workflow.run
    async def run(self, request: RolloutInput) -> RolloutStatus:
        return await super().run(request)


async def test_a_rollout_started_on_the_old_code_finishes_on_the_new(dev_client, unique):
    queue, cluster = f"upgrade-{unique}", FakeCluster()
    rollout = canary_rollout(name=f"web-{unique}", steps=[{"setWeight": 20}, {"pause": {}}, {"setWeight": 60},
                                                          {"setWeight": 100}])
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        async with Worker(dev_client, task_queue=queue, workflows=[CanaryRollout], activities=cluster.activities(),
                          activity_executor=pool, identity="old-code"):
            handle = await start_workflow(dev_client, rollout, queue, "test")
            await paused_at(handle, 1)
        old_history = await handle.fetch_history()  # the old worker is gone: this is what the new one finds

        careless = Replayer(workflows=[CanaryCareless], data_converter=pydantic_data_converter)
        failure = (await careless.replay_workflow(old_history, raise_on_replay_failure=False)).replay_failure
        assert failure is not None and "nondeterminism" in str(failure).lower()

        async with Worker(dev_client, task_queue=queue, workflows=[CanaryNext], activities=cluster.activities(),
                          activity_executor=pool, max_cached_workflows=0, identity="new-code"):
            await handle.execute_update("promote", PromoteRequest(by="sre"))
            final = await finished(handle, 60)
            fresh = await start_workflow(dev_client, canary_rollout(name=f"api-{unique}", steps=[{"setWeight": 100}]),
                                         queue, "test")
            assert (await finished(fresh, 60)).phase is Phase.HEALTHY
    assert final.phase is Phase.HEALTHY and final.canary_weight == 100
    events = (await handle.fetch_history()).events
    upgraded_at = len(old_history.events)
    after = [e.workflow_task_started_event_attributes.identity for e in events[upgraded_at:]
             if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED]
    assert after and set(after) == {"new-code"}, "the new worker finished it"
    assert not any(e.event_type == EventType.EVENT_TYPE_TIMER_STARTED for e in events), "the old path to the end"
    fresh_events = (await fresh.fetch_history()).events
    assert sum(e.event_type == EventType.EVENT_TYPE_TIMER_STARTED for e in fresh_events) == 1, "new runs: the new path"
    assert any(e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
               and PATCH in str(e.marker_recorded_event_attributes.details) for e in fresh_events)
