"""Server restart: the dev server (SQLite file) is stopped and started again mid-rollout, with a timer
running; the worker reconnects on its own and the rollout completes."""

from __future__ import annotations

import asyncio

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from localcluster.devserver import DevServer, free_port
from models.status import Phase, PromoteRequest, RolloutStatus
from starters.commands import start_workflow
from tests.helpers import canary_rollout, finished, paused_at
from workers.temporal import ensure_search_attributes
from workflows.canary import CanaryRollout


async def test_dev_server_restart_mid_rollout(tmp_path, local_cluster, workload, worker_processes, unique):
    server = DevServer(db_file=tmp_path / "temporal.db", port=free_port(), ui_port=None,
                       log_file=tmp_path / "server.log").start()
    try:
        queue = f"restart-{unique}"
        worker_processes(server.address, queue)
        client = await Client.connect(server.address, data_converter=pydantic_data_converter)
        rollout = canary_rollout(name=f"web-{unique}", namespace=workload, deployment="web",
                                 image="registry.local/web:3.0.0",
                                 steps=[{"setWeight": 25}, {"pause": {"duration": "6s"}}, {"setWeight": 50},
                                        {"pause": {}}, {"setWeight": 100}])
        handle = await start_workflow(client, rollout, queue, "test")
        await paused_at(handle, 1)

        server.stop()  # the 6 s timer is due while the server is down
        await asyncio.sleep(8)
        server.start()
        assert await ensure_search_attributes(client, "default") == [], "search attributes survived the restart"

        client = await Client.connect(server.address, data_converter=pydantic_data_converter)
        handle = client.get_workflow_handle_for(CanaryRollout.run, rollout.rollout_id)
        status = await paused_at(handle, 3, timeout=90)
        assert status.canary_weight == 50
        await handle.execute_update("promote", PromoteRequest(by="test"))
        final: RolloutStatus = await finished(handle, 90)
        assert final.phase is Phase.HEALTHY
        assert [h.event for h in final.history].count("weight-set") == 3
    finally:
        server.stop()
