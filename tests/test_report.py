"""`rollout report`: a real canary on the local cluster (an analysis on the real Prometheus, an approval)
drawn from its status and history; the picture is checked by what it plots (the exposure steps, the
measurements and their threshold, the waits, the decision and its author, the verdict), the HTML by its
tables, and the CLI writes both."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.dates as mdates

from models.approvals import ApproveRequest
from models.spec import parse_rollout
from starters import report
from starters.commands import start_workflow
from tests.helpers import canary_document, finished, paused_at

REPO = Path(__file__).resolve().parent.parent


async def test_a_rollout_report_draws_what_the_rollout_did(
    dev_server, dev_client, cluster_worker, workload, prometheus, unique, tmp_path, monkeypatch
):
    document = canary_document(name=f"web-{unique}", namespace=workload, deployment="web",
                               image="registry.local/web:3.0.0", steps=[
                                   {"setWeight": 25}, {"analysis": {"templates": [{"templateName": "errors"}]}},
                                   {"approval": {"description": "go to 100%"}}, {"setWeight": 100}])
    document["spec"]["analysis"] = {"templates": [{"name": "errors", "metrics": [{
        "name": "rate", "count": 3, "interval": "1s", "successCondition": "result[0] <= 0.01",
        "provider": {"prometheus": {"address": prometheus.url, "query": "vector(0.004)"}}}]}]}
    handle = await start_workflow(dev_client, parse_rollout(document), cluster_worker, "ci")
    await paused_at(handle, 2)
    await handle.execute_update("approve", ApproveRequest(by="alice", comment="errors flat"))
    assert (await finished(handle, 90)).phase.value == "Healthy"

    monkeypatch.setenv("TEMPORAL_ADDRESS", dev_server.address)
    built = await report.build(handle.id)
    fig = report.figure(built)
    top, bottom = fig.axes
    [exposure] = top.get_lines()[:1]
    assert list(exposure.get_ydata()) == [25.0, 100.0, 100.0] and exposure.get_label().startswith("traffic")
    spans = [p.get_label() for p in top.patches]
    assert spans == ["waiting: analysis errors", "waiting: approval go to 100%"], spans
    assert [t.get_text() for t in top.texts] == ["approve by alice"]
    assert "Healthy" in top.get_title() and "registry.local/web:3.0.0" in top.get_title()
    measured, threshold = bottom.get_lines()[:2]
    assert measured.get_label() == "errors/rate" and list(measured.get_ydata()) == [0.004] * 3
    assert threshold.get_label() == "errors/rate success <= 0.01" and list(threshold.get_ydata()) == [0.01, 0.01]
    first, last = mdates.num2date(measured.get_xdata(orig=False)[[0, -1]])
    assert built.status.started_at.replace(tzinfo=None) <= first.replace(tzinfo=None) <= last.replace(tzinfo=None)

    (REPO / "artifacts").mkdir(exist_ok=True)  # kept after the run, as the Web UI's screenshots are
    png, page = REPO / "artifacts" / "rollout-report.png", tmp_path / "report.html"
    done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "starters.cli", "report", handle.id,
                                                    "--png", str(png), "--html", str(page)], cwd=REPO,
                                   env={**os.environ, "TEMPORAL_ADDRESS": dev_server.address},
                                   capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    text = page.read_text()
    assert 'id="verdict">Healthy' in text and "data:image/png;base64," in text
    assert text.count("<td>errors/rate</td>") == 3 and "<td>alice</td>" in text and "errors flat" in text
    nothing = subprocess.run([sys.executable, "-m", "starters.cli", "report", handle.id], cwd=REPO,
                             env={**os.environ, "TEMPORAL_ADDRESS": dev_server.address}, capture_output=True,
                             text=True, timeout=60)
    assert nothing.returncode == 2 and "--png FILE and/or --html FILE" in nothing.stderr
