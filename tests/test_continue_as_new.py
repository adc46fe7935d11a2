"""Long waits continue as new (time-skipping server, fake cluster): a canary paused for hours with a
background analysis every few seconds, a timed pause under analysis, and an approval reminding every
minute each hand over to new runs before the history grows long, and each new run picks up the same
wait: nothing is done twice (prepare, weights), no count or vote is lost, a timer keeps its end."""

from __future__ import annotations

import concurrent.futures
from datetime import timedelta

from temporalio.api.enums.v1 import EventType
from temporalio.worker import Worker

from activities.approvers import ApproverActivities
from activities.notify import NotifyActivities
from models.approvals import ApproveRequest
from models.spec import parse_rollout
from models.status import PromoteRequest, RolloutInput, RolloutStatus
from tests.helpers import canary_document, cancel_margin, clear_of_timers, eventually, past_reopening, skip_time
from tests.test_analysis_workflow import Script
from tests.test_approvals import slack  # noqa: F401 - the notification receiver fixture
from tests.test_canary_workflow import FakeCluster
from workflows.canary import CanaryRollout

LIMIT = 120  # continue after this many events (production: 10,000 or the server's suggestion)
BACKGROUND = {"templates": [{"templateName": "checks"}], "startingStep": 1}
TEMPLATES = {"templates": [{"name": "checks", "metrics": [{
    "name": "ok", "interval": "5s", "successCondition": "result[0] > 0",
    "provider": {"prometheus": {"address": "http://prometheus.invalid", "query": "up"}}}]}]}


async def start(env, unique, steps, script=None, **spec):
    cluster = FakeCluster()
    document = canary_document(name=f"can-{unique}", steps=steps)
    document["spec"]["strategy"]["canary"].update(spec.pop("canary", {}))
    document["spec"].update(spec)
    rollout = parse_rollout(document)
    queue = f"can-{unique}"
    extra = [script.activity()] if script else []
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)
    worker = Worker(env.client, task_queue=queue, workflows=[CanaryRollout], activity_executor=pool,
                    activities=[*cluster.activities(), *extra, ApproverActivities().resolve_groups,
                                NotifyActivities().notify])
    await worker.__aenter__()
    handle = await env.client.start_workflow(
        CanaryRollout.run, RolloutInput(rollout=rollout, requested_by="ci", continue_after_events=LIMIT),
        id=rollout.rollout_id, task_queue=queue)
    return handle, cluster, worker


async def histories(env, handle) -> list:
    """The history of every run of the workflow, first to last."""
    runs, run_id = [], handle.first_execution_run_id
    while run_id:
        history = await env.client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        runs.append(history)
        last = history.events[-1]
        run_id = (last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
                  if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW else "")
    return runs


async def status(handle) -> RolloutStatus:
    return await handle.query("status", result_type=RolloutStatus)


async def test_an_open_pause_with_background_analysis_runs_for_hours(time_skipping_env, unique):
    script = Script(ok=["Successful"])
    handle, cluster, worker = await start(time_skipping_env, unique, [{"setWeight": 20}, {"pause": {}}, {"setWeight": 100}],
                                          script, canary={"analysis": BACKGROUND}, analysis=TEMPLATES)
    try:
        await eventually(lambda: status(handle), what="started")
        await skip_time(time_skipping_env, timedelta(hours=1))  # a measurement every 5 s
        paused = await status(handle)
        assert paused.runs >= 5 and paused.current_step == 1 and paused.phase.value == "Paused", paused
        await clear_of_timers(time_skipping_env, handle.id)  # the promote cancels the next measurement's timer
        await handle.execute_update("promote", PromoteRequest(by="alice"))  # reaches the newest run
        final: RolloutStatus = await handle.result()
    finally:
        await worker.__aexit__(None, None, None)
    # Between the status read and the promote the server's clock runs at real pace, measurements go on, and
    # under load the rollout can continue once more (run 33: 66 runs, 65 read): the promote reaches whichever
    # run is newest, and nothing is redone (below).
    assert final.phase.value == "Healthy" and final.runs >= paused.runs
    assert cluster.calls == ["prepare", "weight 20", "weight 100", "promote"], "nothing redone by a new run"
    lengths = [len(h.events) for h in await histories(time_skipping_env, handle)]
    assert len(lengths) == final.runs and max(lengths) < LIMIT + 40, lengths
    metric = final.analysis[0]
    taken = len(script.taken)
    assert taken >= 600 and taken - final.runs <= metric.successful <= taken, (taken, metric.successful)
    assert [h.by for h in final.history if h.event == "promoted"] == ["alice"]


async def test_a_timed_pause_keeps_its_end_across_runs(time_skipping_env, unique):
    script = Script(ok=["Successful"])
    # A measurement a minute and a pause half a minute past a whole number of them: the pause's end cancels
    # the next measurement's timer half an interval before it is due (see `cancel_margin`; with every 5 s
    # and 30m the margin fell anywhere in 0-5 s from run to run).
    every_minute = {"templates": [{**TEMPLATES["templates"][0], "metrics": [
        {**TEMPLATES["templates"][0]["metrics"][0], "interval": "1m"}]}]}
    handle, _, worker = await start(time_skipping_env, unique,
                                    [{"setWeight": 20}, {"pause": {"duration": "3h30s"}}, {"setWeight": 100}],
                                    script, canary={"analysis": BACKGROUND}, analysis=every_minute)
    try:
        final: RolloutStatus = await handle.result()
    finally:
        await worker.__aexit__(None, None, None)
    assert final.phase.value == "Healthy" and final.runs >= 3
    began = next(h.at for h in final.history if h.event == "step-started" and h.step == 1)
    after = next(h.at for h in final.history if h.event == "step-started" and h.step == 2)
    assert timedelta(hours=3, seconds=30) <= after - began < timedelta(hours=3, seconds=40), after - began
    assert await cancel_margin(time_skipping_env.client, handle.id) > timedelta(seconds=10)


async def test_an_approval_keeps_its_votes_and_reminders_across_runs(time_skipping_env, unique, slack):  # noqa: F811
    approval = {"approvers": ["alice", "bob"], "minApprovals": 2, "remindEvery": "1m"}
    handle, cluster, worker = await start(time_skipping_env, unique,
                                          [{"setWeight": 20}, {"approval": approval}, {"setWeight": 100}],
                                          notifications=[{"channel": "releases", "minSeverity": "warning"}])
    try:
        await eventually(lambda: _awaiting(handle), what="the approval")
        await handle.execute_update("approve", ApproveRequest(by="alice", comment="dashboards fine"))
        await skip_time(time_skipping_env, timedelta(hours=1))  # 60 reminders
        waiting = await status(handle)
        assert waiting.runs >= 3 and [v.by for v in waiting.approval.votes] == ["alice"], waiting.approval
        await past_reopening(lambda: handle.execute_update("approve", ApproveRequest(by="bob")))
        final: RolloutStatus = await handle.result()
    finally:
        await worker.__aexit__(None, None, None)
    assert final.phase.value == "Healthy" and cluster.calls == ["prepare", "weight 20", "weight 100", "promote"]
    assert sum(h.event == "approval-requested" for h in final.history) == 1, "asked once, not once per run"
    texts = [body["text"] for _, body in slack.calls]
    assert sum("approval-requested" in t for t in texts) == 1
    assert 55 <= sum("approval-reminder" in t for t in texts) <= 61


async def _awaiting(handle):
    s = await status(handle)
    return s.approval is not None
