"""The worker heartbeats for its activities (workers/heartbeat.py), on the real dev server: an activity
that blocks far longer than its heartbeat timeout without a heartbeat of its own still completes, and a
retried attempt receives the details the previous attempt last gave."""

from __future__ import annotations

import concurrent.futures
import time
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from workers.heartbeat import heartbeat_options


@activity.defn
def blocks(seconds: float) -> list:
    """Attempt 1 heartbeats once, then blocks `seconds` (a slow API call) and fails; the next attempt
    returns the details it was given."""
    if activity.info().attempt == 1:
        activity.heartbeat({"started": 1234})
        time.sleep(seconds)
        raise ApplicationError("the first attempt fails after its long call")
    return list(activity.info().heartbeat_details)


@workflow.defn(sandboxed=False)  # defined in a test module
class CallsBlocking:
    @workflow.run
    async def run(self, seconds: float) -> list:
        return await workflow.execute_activity(
            blocks, seconds, start_to_close_timeout=timedelta(seconds=30), heartbeat_timeout=timedelta(seconds=2),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=2,
                                     non_retryable_error_types=[]),
        )


async def run(client, queue: str, interceptor: bool) -> tuple[list, str]:
    """The result, and how attempt 1 ended (the last failure the retried attempt's start records)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        async with Worker(client, task_queue=queue, workflows=[CallsBlocking], activities=[blocks],
                          activity_executor=pool, **(heartbeat_options() if interceptor else {})):
            handle = await client.start_workflow(CallsBlocking.run, 5.0, id=f"heartbeat-{queue}", task_queue=queue)
            result = await handle.result()
    started = [e.activity_task_started_event_attributes for e in (await handle.fetch_history()).events
               if e.HasField("activity_task_started_event_attributes")]
    assert [s.attempt for s in started] == [2]
    failure = started[0].last_failure
    return result, failure.message or str(failure.timeout_failure_info)


async def test_a_blocked_activity_stays_alive_and_its_retry_keeps_the_details(dev_client, unique):
    # 5 s blocked against a 2 s heartbeat timeout: only the worker's heartbeats keep attempt 1 alive until
    # it fails by itself
    result, first = await run(dev_client, f"hb-{unique}", interceptor=True)
    assert first == "the first attempt fails after its long call"
    assert result == [{"started": 1234}], "attempt 2 starts from attempt 1's details"


async def test_without_it_the_blocked_attempt_times_out(dev_client, unique):
    # the same activity on a worker without it: attempt 1 is taken for dead after 2 s, and attempt 2 runs
    # while attempt 1 still holds its call
    _, first = await run(dev_client, f"hb-none-{unique}", interceptor=False)
    assert "heartbeat" in first.lower(), first
