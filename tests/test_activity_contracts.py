"""Activity contracts, read from what the workflows really schedule: every recorded scenario (every
workflow type; success, abort, failure, approval, rollback) is run again on the time-skipping server
with the current code, and every ActivityTaskScheduled event in its history must carry

- a start-to-close timeout (one attempt cannot hang forever),
- a heartbeat timeout for the activities that wait (a dead worker is noticed within seconds),
- a bounded retry policy (attempts or schedule-to-close) with the permanent error types named
  non-retryable, so a rollout fails fast on bad input instead of retrying forever.

The fresh histories must also replay against the code that made them."""

from __future__ import annotations

import json

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from localcluster.devserver import binary
from tests.record_histories import SCENARIOS, record
from workers.temporal import ensure_search_attributes
from workflows.options import PERMANENT
from workflows.registry import ALL_WORKFLOWS

# Short, bounded calls that do not wait on anything (their own HTTP timeouts are shorter than start-to-close).
QUICK = {"notify", "call_webhook", "resolve_groups", "fetch_signing_keys"}
SEEN: set[str] = set()


def problems(history) -> list[str]:
    found = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED and \
                event.marker_recorded_event_attributes.marker_name == "core_local_activity":
            data = event.marker_recorded_event_attributes.details["data"].payloads[0].data
            SEEN.add(json.loads(data)["activity_type"])  # a local activity: timed out by the workflow task
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        a = event.activity_task_scheduled_event_attributes
        name = a.activity_type.name
        SEEN.add(name)
        retry = a.retry_policy
        if a.start_to_close_timeout.ToTimedelta().total_seconds() <= 0:
            found.append(f"{name}: no start-to-close timeout")
        if name not in QUICK and a.heartbeat_timeout.ToTimedelta().total_seconds() <= 0:
            found.append(f"{name}: waits without a heartbeat timeout")
        if retry.maximum_attempts <= 0 and a.schedule_to_close_timeout.ToTimedelta().total_seconds() <= 0:
            found.append(f"{name}: retries forever")
        if "Invalid" not in retry.non_retryable_error_types:
            found.append(f"{name}: bad input (Invalid) would be retried")
        if name not in QUICK | {"measure"} and not set(PERMANENT) <= set(retry.non_retryable_error_types):
            found.append(f"{name}: a permanent cluster error would be retried: {list(retry.non_retryable_error_types)}")
    return found


@pytest.fixture(scope="module")
async def own_env():
    """A time-skipping server of its own: some scenarios leave a workflow running (a rollback window)
    whose pending tasks would hold the shared server's clock for the tests after this module."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=binary("temporal-test-server"))
    await ensure_search_attributes(env.client, "default")
    yield env
    await env.shutdown()


@pytest.mark.parametrize("name, scenario, fakes", SCENARIOS, ids=[s[0] for s in SCENARIOS])
async def test_every_scheduled_activity_has_a_contract(name, scenario, fakes, own_env):
    history = await record(own_env.client, name, scenario, fakes)
    assert problems(history) == []
    replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=pydantic_data_converter)
    assert (await replayer.replay_workflow(history, raise_on_replay_failure=False)).replay_failure is None


def test_the_scenarios_scheduled_every_activity_type():
    from workers.main import activities_for

    registered = {fn.__temporal_activity_definition.name for fn in activities_for(None)}
    assert registered - SEEN == set(), "activities no recorded scenario exercises"
