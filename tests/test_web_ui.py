"""An approver in the real Temporal Web UI (the dev server's, driven by headless Chromium): the page
says what the rollout waits for and how to answer, and a `promote` signal sent from the UI's
"Send a Signal" dialog moves the rollout on."""

from __future__ import annotations

import asyncio

from models.status import Phase
from starters.commands import start_workflow
from tests import webui
from tests.helpers import canary_rollout, finished, paused_at


async def test_approver_sees_details_and_promotes_from_the_web_ui(
    dev_server, dev_client, cluster_worker, workload, unique, tmp_path
):
    rollout = canary_rollout(name=f"web-{unique}", namespace=workload, deployment="web",
                             image="registry.local/web:5.0.0",
                             steps=[{"setWeight": 25}, {"pause": {}}, {"setWeight": 100}])
    handle = await start_workflow(dev_client, rollout, cluster_worker, "test")
    await paused_at(handle, 1)

    def approve() -> str:
        with webui.browser_page() as page:
            webui.open_rollout(page, dev_server.ui_url, rollout.rollout_id)
            details = webui.current_details(page)
            webui.send_signal(page, "promote", '{"by": "web-ui-approver"}', screenshot=str(tmp_path / "signal.png"))
            return details

    details = await asyncio.to_thread(approve)  # the in-process worker keeps running meanwhile
    assert "Paused · WaitingForPromote · step 2 of 3 · canary weight 25%" in details
    assert f"rollout promote {rollout.rollout_id}" in details
    assert 'Send Signal promote with input {"by": "your-name"}' in details

    final = await finished(handle, 60)
    assert final.phase is Phase.HEALTHY
    assert [(h.event, h.by) for h in final.history if h.event == "promoted"] == [("promoted", "web-ui-approver")]
