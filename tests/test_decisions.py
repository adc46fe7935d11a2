"""The other decisions (pause, resume, setWeight, promote --full, skipAnalysis) on the time-skipping
test server, through the update door (the signal door shares the rules: test_approvals)."""

from __future__ import annotations

from datetime import timedelta

from models.approvals import PauseRequest, PromoteRequest, ResumeRequest, SetWeightRequest, SkipAnalysisRequest
from models.status import Phase, RolloutStatus
from tests.helpers import eventually, paused_at, skip_time, with_reason
from tests.test_analysis_workflow import Script
from tests.test_approvals import refused, rollout, status_of  # noqa: F401 - `rollout` is a fixture
from tests.test_canary_workflow import FakeCluster


async def test_pause_holds_at_the_next_step_and_set_weight_applies_while_held(rollout, time_skipping_env):
    handle, cluster = await rollout([{"setWeight": 20}, {"pause": {"duration": "10m"}}, {"setWeight": 50},
                                     {"setWeight": 100}])
    await paused_at(handle, 1)
    assert "not held" in await refused(handle, "resume", ResumeRequest(by="bob"))
    assert "applies while the rollout is paused" not in await refused(handle, "pause", PauseRequest(by=""))
    await handle.execute_update("pause", PauseRequest(by="bob", comment="waiting for the load test"))
    assert "already held by bob" in await refused(handle, "pause", PauseRequest(by="carol"))
    await handle.execute_update("setWeight", SetWeightRequest(by="bob", weight=35))
    await eventually(lambda: "weight 35" in cluster.calls, what="the weight override applied")
    await skip_time(time_skipping_env, timedelta(minutes=11))  # the timed pause ends; the hold keeps it at step 3
    status = await with_reason(handle, "PausedByUser")
    assert (status.phase, status.held_by, status.canary_weight) == (Phase.PAUSED, "bob", 35)
    assert cluster.calls == ["prepare", "weight 20", "weight 35"]
    await handle.execute_update("resume", ResumeRequest(by="carol"))
    final: RolloutStatus = await handle.result()
    assert final.phase is Phase.HEALTHY
    assert cluster.calls == ["prepare", "weight 20", "weight 35", "weight 50", "weight 100", "promote"]
    assert [(d.kind, d.by) for d in final.decisions] == [("pause", "bob"), ("setWeight", "bob"), ("resume", "carol")]
    assert ("weight-override", "bob") in [(h.event, h.by) for h in final.history]


async def test_set_weight_is_refused_while_a_step_runs(rollout):
    handle, cluster = await rollout([{"setWeight": 20}, {"setWeight": 50}], cluster=FakeCluster(block_at_weight=50))
    await eventually(lambda: "weight 50" in cluster.calls, what="weight 50 in flight")
    assert await refused(handle, "setWeight", SetWeightRequest(by="bob", weight=5)) == (
        "Refused: setWeight applies while the rollout is paused (`rollout pause` first)")
    await handle.execute_update("abort", {"by": "bob", "reason": "stop"})
    assert (await handle.result()).canary_weight == 0


async def test_promote_full_skips_the_remaining_steps_but_never_an_approval(rollout):
    handle, cluster = await rollout([{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}, {"pause": {}},
                                     {"setWeight": 80}])
    await paused_at(handle, 1)
    await handle.execute_update("promote", PromoteRequest(by="bob", full=True))
    final: RolloutStatus = await handle.result()
    assert final.phase is Phase.HEALTHY and cluster.calls == ["prepare", "weight 10", "promote"]
    assert [h.detail for h in final.history if h.event == "promote-full"] == ["steps 3-5 skipped"]

    handle, cluster = await rollout([{"setWeight": 10}, {"pause": {}}, {"approval": {"approvers": ["carol"]}},
                                     {"setWeight": 80}])
    await paused_at(handle, 1)
    assert await refused(
        handle, "promote", PromoteRequest(by="bob", full=True)) == "Refused: promote --full would skip the approval at step 3"
    await handle.execute_update("promote", PromoteRequest(by="bob"))
    await paused_at(handle, 2)
    await handle.execute_update("approve", {"by": "carol"})
    assert (await handle.result()).phase is Phase.HEALTHY


async def test_skip_analysis_ends_the_running_analysis_as_successful(rollout):
    script = Script(rate=["Successful"])
    analysis = {"templates": [{"name": "checks", "metrics": [
        {"name": "rate", "count": 10, "interval": "1h", "successCondition": "result[0] > 0",
         "provider": {"prometheus": {"address": "http://prometheus.invalid", "query": "up"}}}]}]}
    steps = [{"setWeight": 20}, {"pause": {}}, {"analysis": {"templates": [{"templateName": "checks"}]}},
             {"setWeight": 100}]
    handle, cluster = await rollout(steps, extra_activities=[script.activity()], analysis=analysis)
    await paused_at(handle, 1)
    assert await refused(handle, "skipAnalysis", SkipAnalysisRequest(by="sre")) == "Refused: no analysis is running"
    await handle.execute_update("promote", PromoteRequest(by="sre"))
    await eventually(lambda: len(script.taken) >= 1, what="a first measurement")
    await handle.execute_update("skipAnalysis", SkipAnalysisRequest(by="sre", comment="metrics lag, checked by hand"))
    final: RolloutStatus = await handle.result()
    assert final.phase is Phase.HEALTHY and cluster.calls[-2:] == ["weight 100", "promote"]
    assert len(script.taken) < 10
    assert [h.detail for h in final.history if h.event == "analysis-successful"] == [
        "skipped by sre: metrics lag, checked by hand"]
