"""Canary workflow logic on the time-skipping test server, Kubernetes activities replaced by fakes
registered under the same activity names."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from models.kubernetes import FinishInput, PrepareCanaryInput, PrepareCanaryResult, SetWeightInput, WeightResult
from models.status import AbortRequest, Phase, PromoteRequest, RolloutInput, RolloutStatus
from tests.helpers import canary_rollout, eventually, paused_at, skip_time
from workflows.canary import CanaryRollout


class FakeCluster:
    """Records what the workflow asked of the cluster, in order."""

    def __init__(self, fail_at_weight: int | None = None, block_at_weight: int | None = None):
        self.calls: list[str] = []
        self.fail_at_weight = fail_at_weight
        self.block_at_weight = block_at_weight
        self.cancelled = asyncio.Event()

    def activities(self) -> list:
        @activity.defn(name="prepare_canary")
        async def prepare(request: PrepareCanaryInput) -> PrepareCanaryResult:
            self.calls.append("prepare")
            return PrepareCanaryResult(total_replicas=4, stable_image="registry.local/checkout-api:1.4.1", container="app")

        @activity.defn(name="set_canary_weight")
        async def set_weight(request: SetWeightInput) -> WeightResult:
            self.calls.append(f"weight {request.weight}")
            if request.weight == self.fail_at_weight:
                raise ApplicationError("canary 0/1 ready after 120s", type="ProgressDeadlineExceeded", non_retryable=True)
            if request.weight == self.block_at_weight:
                try:
                    while True:
                        activity.heartbeat()
                        await asyncio.sleep(0.1)
                except asyncio.CancelledError:
                    self.cancelled.set()
                    raise
            canary = -(-4 * request.weight // 100)
            return WeightResult(
                weight=request.weight, canary_replicas=canary, stable_replicas=4 - canary,
                actual_weight=canary * 25.0, changed=True,
            )

        @activity.defn(name="promote_canary")
        async def promote(request: FinishInput) -> None:
            self.calls.append("promote")

        @activity.defn(name="abort_canary")
        async def abort(request: FinishInput) -> None:
            self.calls.append("abort")

        return [prepare, set_weight, promote, abort]


@pytest.fixture
async def run_canary(time_skipping_env, unique):
    """Start a canary workflow against a fake cluster; yields (handle, cluster) per call."""
    workers = []

    async def start(cluster: FakeCluster, **spec):
        queue = f"canary-{unique}"
        worker = Worker(time_skipping_env.client, task_queue=queue, workflows=[CanaryRollout], activities=cluster.activities())
        await worker.__aenter__()
        workers.append(worker)
        rollout = canary_rollout(name=f"web-{unique}", **spec)
        handle = await time_skipping_env.client.start_workflow(
            CanaryRollout.run, RolloutInput(rollout=rollout, requested_by="test"), id=rollout.rollout_id, task_queue=queue
        )
        return handle

    yield start
    for worker in workers:
        await worker.__aexit__(None, None, None)


async def test_steps_run_in_order_with_timer_and_promote(run_canary, time_skipping_env):
    cluster = FakeCluster()
    handle = await run_canary(cluster)
    timed = await paused_at(handle, 1)
    assert timed.reason == "TimedPause" and timed.paused_until is not None
    await skip_time(time_skipping_env, timedelta(seconds=31))
    paused = await paused_at(handle, 3)
    assert paused.reason == "WaitingForPromote"
    assert cluster.calls == ["prepare", "weight 20", "weight 50"]
    assert paused.canary_weight == 50 and paused.canary_replicas == 2 and paused.stable_replicas == 2

    result = await handle.execute_update("promote", PromoteRequest(by="alice"), result_type=None)
    assert result["accepted"] is True if isinstance(result, dict) else result.accepted
    final: RolloutStatus = await handle.result()
    assert final.phase is Phase.HEALTHY
    assert cluster.calls == ["prepare", "weight 20", "weight 50", "weight 100", "promote"]
    events = [(h.event, h.step) for h in final.history]
    assert ("pause-ended", 1) in events and ("promoted", 3) in events
    started = {h.step: h.at for h in final.history if h.event == "step-started"}
    assert started[2] - started[1] >= timedelta(seconds=30), "the timed pause lasted its 30s"
    assert next(h for h in final.history if h.event == "promoted").by == "alice"


async def test_abort_while_paused_returns_traffic_to_stable(run_canary):
    cluster = FakeCluster()
    handle = await run_canary(cluster, steps=[{"setWeight": 25}, {"pause": {}}, {"setWeight": 100}])
    await paused_at(handle, 1)
    await handle.execute_update("abort", AbortRequest(reason="error budget burning", by="bob"))
    final: RolloutStatus = await handle.result()
    assert final.phase is Phase.DEGRADED and final.reason == "RolloutAborted"
    assert final.message == "error budget burning"
    assert cluster.calls == ["prepare", "weight 25", "abort"]
    assert final.canary_weight == 0 and final.stable_replicas == 4


async def test_promote_is_refused_when_not_paused_and_abort_needs_reason(run_canary):
    cluster = FakeCluster(block_at_weight=50)
    handle = await run_canary(cluster, steps=[{"setWeight": 50}, {"pause": {}}])
    await eventually(lambda: "weight 50" in cluster.calls, what="weight 50 in flight")
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("promote", PromoteRequest(by="carol"))
    assert "not paused" in str(refused.value.cause)
    with pytest.raises(WorkflowUpdateFailedError) as no_reason:
        await handle.execute_update("abort", AbortRequest(reason=" ", by="carol"))
    assert "reason" in str(no_reason.value.cause)
    # An abort during the in-flight step cancels the activity, then returns traffic to stable.
    await handle.execute_update("abort", AbortRequest(reason="stop", by="carol"))
    final: RolloutStatus = await handle.result()
    assert cluster.cancelled.is_set()
    assert final.phase is Phase.DEGRADED and cluster.calls == ["prepare", "weight 50", "abort"]


async def test_signals_from_the_web_ui_have_the_same_meaning(run_canary):
    cluster = FakeCluster()
    handle = await run_canary(cluster, steps=[{"setWeight": 10}, {"pause": {}}, {"setWeight": 60}, {"pause": {}}])
    await paused_at(handle, 1)
    await handle.signal("promote", PromoteRequest(by="ui-user"))
    await paused_at(handle, 3)
    await handle.signal("abort", AbortRequest(by="ui-user"))  # no reason: refused, recorded, not acted on
    await eventually(lambda: _refusals(handle), what="the refused abort in status")
    await handle.signal("abort", AbortRequest(by="ui-user", reason="checkout errors"))
    final: RolloutStatus = await handle.result()
    assert final.phase is Phase.DEGRADED and final.reason == "RolloutAborted"
    assert cluster.calls == ["prepare", "weight 10", "weight 60", "abort"]
    assert [h.by for h in final.history if h.event in ("promoted", "abort-requested")] == ["ui-user", "ui-user"]
    refused = [d for d in final.decisions if not d.accepted]
    assert [(d.kind, d.source, d.why) for d in refused] == [("abort", "web-ui", "abort: say why (reason)")]


async def _refusals(handle) -> list:
    status = await handle.query("status", result_type=RolloutStatus)
    return [d for d in status.decisions if not d.accepted]


async def test_failed_step_rolls_back_with_its_reason(run_canary):
    cluster = FakeCluster(fail_at_weight=50)
    handle = await run_canary(cluster, steps=[{"setWeight": 20}, {"setWeight": 50}, {"setWeight": 100}])
    final: RolloutStatus = await handle.result()
    assert final.phase is Phase.DEGRADED and final.reason == "ProgressDeadlineExceeded"
    assert "0/1 ready" in final.message
    assert cluster.calls == ["prepare", "weight 20", "weight 50", "abort"]


async def test_an_approval_step_needs_someone_who_approves(run_canary):
    cluster = FakeCluster()
    handle = await run_canary(cluster, steps=[{"setWeight": 20}, {"approval": {"description": "check the dashboard"}},
                                              {"setWeight": 100}])
    status = await paused_at(handle, 1)
    assert (status.reason, status.message) == ("WaitingForApproval", "waiting for approval: check the dashboard")
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("promote", PromoteRequest(by=" "))
    assert "say who decides (by)" in str(refused.value.cause)
    await handle.signal("promote", PromoteRequest())  # the Web UI without `by`: refused, recorded
    await handle.execute_update("promote", PromoteRequest(by="release-manager"))
    final: RolloutStatus = await handle.result()
    assert final.phase is Phase.HEALTHY
    assert [(h.event, h.by) for h in final.history if h.event in ("approved", "promoted", "promote-refused")] == [
        ("promote-refused", ""), ("promoted", "release-manager")]
    assert ("approval-decided", 1) in [(h.event, h.step) for h in final.history]
