"""Approval policies and the decision doors, on the time-skipping test server: the Kubernetes
activities are the fake cluster of test_canary_workflow; group resolution and notifications are the
real activities (an env-configured group, a local Slack-compatible receiver)."""

from __future__ import annotations

import asyncio
import concurrent.futures
from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowUpdateFailedError
from temporalio.worker import Worker

from activities.approvers import ApproverActivities
from activities.notify import NotifyActivities
from models.approvals import AbortRequest, ApproveRequest, PromoteRequest, RejectRequest
from models.spec import parse_rollout
from models.status import Phase, RolloutInput, RolloutStatus
from tests.helpers import canary_document, eventually, skip_time
from tests.test_canary_workflow import FakeCluster
from tests.test_webhooks import HookServer
from workflows.canary import CanaryRollout

POLICY = {"approvers": ["alice", "bob", "group:sre"], "minApprovals": 2, "forbidSelfApproval": True,
          "instructions": "Check the **checkout** dashboard."}


@pytest.fixture
def slack(monkeypatch):
    """A Slack-compatible incoming webhook on loopback (the webhook tests' recording server)."""
    receiver = HookServer(releases=[200])
    monkeypatch.setenv("ROLLOUT_NOTIFY_RELEASES", receiver.url("releases"))
    yield receiver
    receiver.server.shutdown()


@pytest.fixture
async def rollout(time_skipping_env, unique, monkeypatch):
    """start(steps, initiator=..., **spec fields) -> (handle, cluster)."""
    monkeypatch.setenv("ROLLOUT_GROUP_SRE", "carol, dave")
    workers, pool = [], concurrent.futures.ThreadPoolExecutor(max_workers=4)
    count = iter(range(100))

    async def start(steps, initiator="alice", cluster=None, extra_activities=(), **spec):
        cluster = cluster or FakeCluster()
        queue = f"approvals-{unique}-{next(count)}"
        worker = Worker(time_skipping_env.client, task_queue=queue, workflows=[CanaryRollout],
                        activities=[*cluster.activities(), ApproverActivities().resolve_groups,
                                    NotifyActivities().notify, *extra_activities], activity_executor=pool)
        await worker.__aenter__()
        workers.append(worker)
        document = canary_document(name=f"web-{unique}-{len(workers)}", steps=steps)
        document["spec"].update(spec)
        if "analysis" in spec:
            document["spec"]["analysis"] = spec["analysis"]
        handle = await time_skipping_env.client.start_workflow(
            CanaryRollout.run, RolloutInput(rollout=parse_rollout(document), requested_by=initiator),
            id=f"rollout/test/web-{unique}-{len(workers)}", task_queue=queue)
        return handle, cluster

    yield start
    for worker in workers:
        await worker.__aexit__(None, None, None)
    pool.shutdown()


def near(measured: timedelta, expected: timedelta) -> bool:
    """Timer fire times on the test server are exact to a few milliseconds."""
    return abs(measured - expected) < timedelta(seconds=1)


async def status_of(handle) -> RolloutStatus:
    return await handle.query("status", result_type=RolloutStatus)


async def waiting_for_approval(handle, votes: int = 0) -> RolloutStatus:
    async def check():
        s = await status_of(handle)
        return s if s.approval is not None and not s.approval.decided and len(s.approval.votes) == votes else None
    return await eventually(check, what=f"an open approval with {votes} votes")


async def refused(handle, name: str, request) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as error:
        await handle.execute_update(name, request)
    return f"{error.value.cause.type}: {error.value.cause.message}"


async def accepted_updates(handle) -> list[str]:
    history = await handle.fetch_history()
    return [e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
            for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED]


async def test_two_of_three_with_groups_self_approval_and_duplicates(rollout):
    handle, cluster = await rollout([{"setWeight": 20}, {"approval": {**POLICY, "description": "go to 100%"}},
                                     {"setWeight": 100}], initiator="alice")
    status = await waiting_for_approval(handle)
    assert status.approval.eligible == ["alice", "bob", "carol", "dave"]  # group:sre from ROLLOUT_GROUP_SRE
    assert (status.phase, status.reason) == (Phase.PAUSED, "WaitingForApproval")

    assert await refused(handle, "approve", ApproveRequest(by="alice")) == (
        "InvalidDecision: alice started this rollout and cannot approve it (forbidSelfApproval)")
    assert await refused(handle, "approve", ApproveRequest(by="mallory")) == (
        "InvalidDecision: mallory is not an approver of step 2 (approvers: alice, bob, group:sre)")
    assert "waits for approval under a policy" in await refused(handle, "promote", PromoteRequest(by="bob"))
    await handle.execute_update("approve", ApproveRequest(by="bob", comment="dashboard green"))
    assert (await waiting_for_approval(handle, votes=1)).approval.votes[0].by == "bob"
    assert (await refused(handle, "approve", ApproveRequest(by="bob"))).startswith(
        "InvalidDecision: bob has already voted (promote at")
    assert "unknown choice 'yolo'" in await refused(handle, "approve", ApproveRequest(by="carol", choice="yolo"))
    assert await refused(handle, "approve", ApproveRequest(by="carol", step=4)) == (  # looked at a later step
        "Refused: approve was meant for step 4, but the rollout is at step 2")
    assert cluster.calls == ["prepare", "weight 20"]  # nothing moved while one approval was missing

    await handle.execute_update("approve", ApproveRequest(by="carol", step=2))  # a member of group:sre
    final: RolloutStatus = await handle.result()
    assert final.phase is Phase.HEALTHY and cluster.calls == ["prepare", "weight 20", "weight 100", "promote"]
    assert [(d.kind, d.by, d.source, d.accepted) for d in final.decisions] == [
        ("approve", "bob", "cli", True), ("approve", "carol", "cli", True)]
    assert await accepted_updates(handle) == ["approve", "approve"]  # the refused ones left no event
    decided = next(h for h in final.history if h.event == "approval-decided")
    assert decided.detail == "promote (promote) by bob, carol"


async def test_choices_drive_the_next_action(rollout, time_skipping_env):
    choices = [{"name": "promote", "action": "promote"}, {"name": "rollback", "action": "abort"},
               {"name": "extend-soak", "action": "extend", "duration": "1h"}]
    steps = [{"setWeight": 20}, {"approval": {"approvers": ["bob", "carol"], "choices": choices}}, {"setWeight": 100}]
    handle, cluster = await rollout(steps)
    await waiting_for_approval(handle)
    await handle.execute_update("approve", ApproveRequest(by="bob", choice="extend-soak"))
    soaking = await eventually(lambda: _with_reason(handle, "Soaking"), what="soaking")
    assert soaking.approval is None and soaking.paused_until is not None
    await skip_time(time_skipping_env, timedelta(minutes=61))
    again = await waiting_for_approval(handle)  # asked again, the earlier vote does not count
    assert again.approval.votes == [] and cluster.calls == ["prepare", "weight 20"]
    await handle.execute_update("approve", ApproveRequest(by="bob", choice="promote"))
    assert (await handle.result()).phase is Phase.HEALTHY

    handle, cluster = await rollout(steps)
    await waiting_for_approval(handle)
    await handle.execute_update("approve", ApproveRequest(by="carol", choice="rollback", comment="p99 up"))
    final: RolloutStatus = await handle.result()
    assert (final.phase, final.reason) == (Phase.DEGRADED, "ApprovalRejected")
    assert final.message == "rollback by carol at step 2: p99 up"
    assert cluster.calls == ["prepare", "weight 20", "abort"]


async def _with_reason(handle, reason: str) -> RolloutStatus | None:
    s = await status_of(handle)
    return s if s.reason == reason else None


@pytest.mark.parametrize("on_timeout", ["abort", "promote", "wait"])
async def test_timeout_actions(rollout, time_skipping_env, on_timeout):
    approval = {"approvers": ["bob"], "timeout": "2h", "onTimeout": on_timeout}
    handle, cluster = await rollout([{"setWeight": 20}, {"approval": approval}, {"setWeight": 100}])
    opened = await waiting_for_approval(handle)
    assert opened.approval.timeout_at == opened.approval.opened_at + timedelta(hours=2)
    if on_timeout == "wait":
        await skip_time(time_skipping_env, timedelta(hours=2, minutes=1))
        still = await eventually(lambda: _timed_out(handle), what="the timeout recorded")
        assert still.phase is Phase.PAUSED and still.approval.timeout_at is None and "still waiting" in still.message
        await handle.execute_update("approve", ApproveRequest(by="bob"))
    final: RolloutStatus = await handle.result()
    timed_out = [h for h in final.history if h.event == "approval-timed-out"]
    assert len(timed_out) == 1 and timed_out[0].detail == f"after 2h: {on_timeout}"
    assert near(timed_out[0].at - opened.approval.opened_at, timedelta(hours=2))
    if on_timeout == "abort":
        assert (final.phase, final.reason) == (Phase.DEGRADED, "ApprovalTimedOut")
        assert cluster.calls[-1] == "abort"
    else:
        assert final.phase is Phase.HEALTHY and cluster.calls[-1] == "promote"


async def _timed_out(handle) -> RolloutStatus | None:
    s = await status_of(handle)
    return s if any(h.event == "approval-timed-out" for h in s.history) else None


async def test_reminders_at_the_right_times(rollout, slack):
    approval = {"approvers": ["bob"], "remindEvery": "10m", "timeout": "35m", "onTimeout": "abort"}
    notifications = [{"channel": "releases", "minSeverity": "warning"}]
    handle, _ = await rollout([{"setWeight": 20}, {"approval": approval}, {"setWeight": 100}],
                              notifications=notifications)
    final: RolloutStatus = await handle.result()
    assert final.reason == "ApprovalTimedOut"
    opened = next(h.at for h in final.history if h.event == "approval-requested")
    reminders = [h.at - opened for h in final.history if h.event == "approval-reminder"]
    assert len(reminders) == 3 and all(near(r, timedelta(minutes=m)) for r, m in zip(reminders, (10, 20, 30), strict=True))
    texts = [body["text"] for _, body in slack.calls]  # warning and above: the request, three reminders, the abort (not phase changes)
    assert sum("approval-requested" in t for t in texts) == 1
    assert sum("approval-reminder" in t for t in texts) == 3
    assert sum("· aborted:" in t and "ApprovalTimedOut" in t for t in texts) == 1
    assert not any("phase-changed" in t for t in texts)
    assert all(body["blocks"][0]["type"] == "section" for _, body in slack.calls)


async def test_update_and_signal_have_the_same_meaning(rollout):
    steps = [{"setWeight": 20}, {"approval": POLICY}, {"setWeight": 100}]
    outcomes = []
    for door in ("update", "signal"):
        handle, cluster = await rollout(steps, initiator="alice")
        await waiting_for_approval(handle)
        for request in (ApproveRequest(by="alice"), ApproveRequest(by="mallory"), ApproveRequest(by="bob"),
                        ApproveRequest(by="bob"), ApproveRequest(by="dave")):
            if door == "update":
                try:
                    await handle.execute_update("approve", request)
                except WorkflowUpdateFailedError:
                    pass
            else:
                await handle.signal("approve", request)
        final: RolloutStatus = await handle.result()
        accepted = [(d.kind, d.by) for d in final.decisions if d.accepted]
        outcomes.append((final.phase, cluster.calls, accepted))
        refusals = [(d.by, d.source) for d in final.decisions if not d.accepted]
        if door == "signal":  # refused signals are recorded as refused, never acted on
            assert refusals == [("alice", "web-ui"), ("mallory", "web-ui"), ("bob", "web-ui")]
        else:  # refused updates never reach the history
            assert refusals == [] and await accepted_updates(handle) == ["approve", "approve"]
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][2] == [("approve", "bob"), ("approve", "dave")]


async def test_many_approvers_at_once(rollout, monkeypatch):
    monkeypatch.setenv("ROLLOUT_GROUP_ONCALL", ",".join(f"oncall-{n}" for n in range(12)))
    approval = {"approvers": ["group:oncall"], "minApprovals": 3}
    handle, cluster = await rollout([{"setWeight": 20}, {"approval": approval}, {"setWeight": 100}])
    await waiting_for_approval(handle)
    results = await asyncio.gather(
        *(handle.execute_update("approve", ApproveRequest(by=f"oncall-{n}")) for n in range(12)),
        return_exceptions=True)
    taken = [r for r in results if not isinstance(r, BaseException)]
    assert len(taken) == 3
    assert all(isinstance(r, WorkflowUpdateFailedError) for r in results if r not in taken)
    final: RolloutStatus = await handle.result()
    assert final.phase is Phase.HEALTHY and len([d for d in final.decisions if d.kind == "approve"]) == 3
    assert cluster.calls == ["prepare", "weight 20", "weight 100", "promote"]


async def test_reject_and_abort_during_approval(rollout):
    handle, cluster = await rollout([{"setWeight": 20}, {"approval": POLICY}, {"setWeight": 100}], initiator="alice")
    await waiting_for_approval(handle)
    assert "not an approver" in await refused(handle, "reject", RejectRequest(by="mallory"))
    await handle.execute_update("reject", RejectRequest(by="alice", comment="wrong build"))  # the initiator may
    final = await handle.result()
    assert (final.phase, final.reason, final.message) == (Phase.DEGRADED, "ApprovalRejected",
                                                          "reject by alice at step 2: wrong build")
    handle, cluster = await rollout([{"setWeight": 20}, {"approval": POLICY}, {"setWeight": 100}])
    await waiting_for_approval(handle)
    await handle.signal("abort", AbortRequest(by="oncall", reason="incident"))
    final = await handle.result()
    assert (final.reason, final.message, cluster.calls[-1]) == ("RolloutAborted", "incident", "abort")


async def test_missing_group_fails_before_anything_changes(rollout):
    approval = {"approvers": ["group:nobody-defined-this"]}
    handle, cluster = await rollout([{"setWeight": 20}, {"approval": approval}, {"setWeight": 100}])
    final: RolloutStatus = await handle.result()
    assert (final.phase, final.reason) == (Phase.DEGRADED, "InvalidApprovalPolicy")
    assert "approver group 'nobody-defined-this' is not defined" in final.message
    assert cluster.calls == []


async def test_execution_window_across_a_weekend(rollout, time_skipping_env):
    """Allowed Mon-Fri 09:00-17:00 UTC; a freeze from now until the coming Saturday 00:00 UTC: the
    rollout waits through the freeze and the weekend and starts on Monday at 09:00."""
    now = await time_skipping_env.get_current_time()  # the test server's clock (earlier tests skipped it ahead)
    saturday = (now + timedelta(days=(5 - now.weekday()) % 7 or 7)).replace(hour=0, minute=0, second=0, microsecond=0)
    monday_nine = saturday + timedelta(days=2, hours=9)
    windows = {"timezone": "UTC", "allow": [{"days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "start": "09:00", "end": "17:00"}],
               "freezes": [{"start": (now - timedelta(hours=1)).isoformat(), "end": saturday.isoformat(),
                            "reason": "end-of-month freeze"}]}
    handle, cluster = await rollout([{"setWeight": 20}, {"setWeight": 100}], executionWindows=windows)
    waiting = await eventually(lambda: _with_reason(handle, "OutsideExecutionWindow"), what="waiting for the window")
    assert waiting.phase is Phase.PAUSED and "freeze: end-of-month freeze" in waiting.message
    assert abs(waiting.paused_until - monday_nine) < timedelta(seconds=1) and cluster.calls == []
    final: RolloutStatus = await handle.result()
    assert final.phase is Phase.HEALTHY
    first = next(h for h in final.history if h.event == "step-started")
    assert abs(first.at - monday_nine) < timedelta(seconds=1) and first.at.weekday() == 0
