"""Record the continue-as-new histories for the replay tests: `python -m tests.record_continued`.

On the time-skipping server (the waits last hours): a canary paused with a background analysis, whose
first run ends by continuing as new and whose last run resumes the pause and is promoted; and an
approval carried over several runs and decided in the last one. Existing files are kept unless
`--force` is given."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import timedelta

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from localcluster.devserver import binary
from models.approvals import ApproveRequest
from models.status import PromoteRequest
from tests.record_histories import HISTORIES
from tests.test_analysis_workflow import Script
from tests.test_continue_as_new import BACKGROUND, TEMPLATES, histories, start
from tests.test_webhooks import HookServer
from workers.temporal import ensure_search_attributes


async def paused_for_an_hour(env):
    handle, _, worker = await start(env, uuid.uuid4().hex[:6], [{"setWeight": 20}, {"pause": {}}, {"setWeight": 100}],
                                    Script(ok=["Successful"]), canary={"analysis": BACKGROUND}, analysis=TEMPLATES)
    await asyncio.sleep(1)
    await env.sleep(timedelta(minutes=20))
    await handle.execute_update("promote", PromoteRequest(by="alice"))
    await handle.result()
    await worker.__aexit__(None, None, None)
    runs = await histories(env, handle)
    return {"canary-continued-as-new": runs[0], "canary-resumed-promoted": runs[-1]}


async def approval_over_runs(env):
    approval = {"approvers": ["alice", "bob"], "minApprovals": 2, "remindEvery": "1m"}
    handle, _, worker = await start(env, uuid.uuid4().hex[:6], [{"setWeight": 20}, {"approval": approval},
                                                                 {"setWeight": 100}],
                                    notifications=[{"channel": "releases", "minSeverity": "warning"}])
    await asyncio.sleep(1)
    await handle.execute_update("approve", ApproveRequest(by="alice"))
    await env.sleep(timedelta(minutes=40))
    await handle.execute_update("approve", ApproveRequest(by="bob"))
    await handle.result()
    await worker.__aexit__(None, None, None)
    return {"canary-approval-resumed": (await histories(env, handle))[-1]}


async def main() -> None:
    receiver = HookServer(releases=[200])  # notifications go somewhere that answers
    os.environ["ROLLOUT_NOTIFY_RELEASES"] = receiver.url("releases")
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=binary("temporal-test-server"))
    try:
        await ensure_search_attributes(env.client, "default")
        for scenario in (paused_for_an_hour, approval_over_runs):
            for name, history in (await scenario(env)).items():
                path = HISTORIES / f"{name}.json"
                if path.exists() and "--force" not in sys.argv:
                    continue
                path.write_text(history.to_json())
                print(f"recorded {name}: {len(history.events)} events")
    finally:
        await env.shutdown()
        receiver.server.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
