"""A pipeline's decisions and gates (time-skipping server, real strategy workflows, fake cluster), and the
CLI's concurrency policy for a second bundle (dev server)."""

from __future__ import annotations

import pytest
from temporalio.worker import Worker

from models.approvals import ApproveRequest, PauseRequest, ResumeRequest
from models.status import Phase, RolloutStatus
from starters.exitcodes import ExitCode, UserError
from tests.helpers import eventually
from tests.pipeline_helpers import FakeFleet, pipeline, stage
from tests.test_pipeline_workflow import run_pipeline, states  # noqa: F401 - the fixture
from workflows.registry import ALL_WORKFLOWS

NEW = "registry.local/web:2.0.0"


async def query(handle) -> RolloutStatus:
    return await handle.query("status", result_type=RolloutStatus)


async def test_pause_holds_before_the_next_round_and_resume_goes_on(run_pipeline, unique):
    doc = pipeline(f"hold-{unique}", NEW, [stage("prod", "shop", ["eu-1", "us-1", "ap-1"], maxParallel=1)])
    fleet = FakeFleet(seconds=2)
    handle = await run_pipeline(fleet, doc)
    await eventually(lambda: "roll eu-1" in fleet.calls, what="the first round")
    await handle.execute_update("pause", PauseRequest(by="alice", comment="incident in us"))
    held = await eventually(lambda: _reason(handle, "PausedByUser"), timeout=30, what="held before round 2")
    assert states(held) == {"prod/eu-1": "verified", "prod/us-1": "pending", "prod/ap-1": "pending"}
    assert "roll us-1" not in fleet.calls
    await handle.signal("resume", ResumeRequest(by="alice"))  # the Web UI's door
    final = await handle.result()
    assert final.phase is Phase.HEALTHY and fleet.calls.count("roll us-1") == 1


async def _reason(handle, reason: str):
    s = await query(handle)
    return s if s.reason == reason else None


async def test_an_approval_before_every_wave(run_pipeline, unique):
    doc = pipeline(f"waves-{unique}", NEW, [stage("prod", "shop", [], approve="wave", gate={"approval": {}},
                                                  waves=[{"targets": [{"context": "eu-1"}]},
                                                         {"targets": [{"context": "us-1"}]}])])
    fleet = FakeFleet()
    handle = await run_pipeline(fleet, doc)
    for wave in (1, 2):
        asked = await eventually(lambda: _approval(handle), timeout=30, what=f"the approval of wave {wave}")
        assert asked.approval.description.startswith(f"prod wave {wave}:")
        assert fleet.calls.count("roll us-1") == 0
        await handle.execute_update("approve", ApproveRequest(by="alice"))
    final = await handle.result()
    assert final.phase is Phase.HEALTHY
    assert [h.event for h in final.history].count("approval-decided") == 2


async def _approval(handle):
    s = await query(handle)
    return s if s.approval is not None and not s.approval.votes else None


async def test_a_failed_check_stops_before_the_stage_and_analysis_gates_it(run_pipeline, unique):
    check = {"name": "migrations", "metric": {"name": "pending-migrations", "successCondition": "result == 1",
                                                "provider": {"web": {"url": "http://127.0.0.1:9/migrations"}}}}
    analysis = {"templates": [{"name": "errors", "metrics": [
        {"name": "error-rate", "successCondition": "result == 1",
         "provider": {"web": {"url": "http://127.0.0.1:9/errors"}}}]}]}
    doc = pipeline(f"checks-{unique}", NEW, [
        stage("staging", "shop", ["stg-1"]),
        stage("prod", "shop", ["eu-1"], gate={"analysis": {"templates": [{"templateName": "errors"}]},
                                              "checks": [check]})], analysis=analysis)
    fleet = FakeFleet(failing=("pending-migrations",))
    final = await (await run_pipeline(fleet, doc)).result()
    assert final.phase is Phase.DEGRADED and final.reason == "CheckFailed"
    assert final.message.startswith("pre-deployment check migrations before prod: Failed")
    assert final.pipeline.stages[1].checks[0].phase == "Failed" and final.pipeline.stages[1].state == "failed"
    assert "roll eu-1" not in fleet.calls and "measure error-rate" not in fleet.calls

    passing = pipeline(f"checks-ok-{unique}", NEW, doc.model_dump(by_alias=True)["spec"]["stages"],
                       analysis=analysis)
    fleet = FakeFleet()
    final = await (await run_pipeline(fleet, passing)).result()
    assert final.phase is Phase.HEALTHY
    assert fleet.calls.index("measure error-rate") < fleet.calls.index("roll eu-1"), "analysis gates the stage"


@pytest.fixture
async def fake_fleet_worker(dev_client, unique):
    queue = f"fake-fleet-{unique}"
    async with Worker(dev_client, task_queue=queue, workflows=ALL_WORKFLOWS, activities=FakeFleet(seconds=2).activities()):
        yield queue


async def test_another_bundle_is_refused_or_supersedes(dev_server, dev_client, fake_fleet_worker, monkeypatch, unique):
    from starters import pipeline as cli

    monkeypatch.setenv("TEMPORAL_ADDRESS", dev_server.address)
    monkeypatch.setenv("ROLLOUT_USER", "ci")
    stages = [stage("prod", "shop", ["eu-1", "us-1"], template=f"s{unique}")]
    first = pipeline(f"cc-{unique}", NEW, stages)
    assert await cli.start(first, False, 60, fake_fleet_worker, True) == ExitCode.OK
    second = pipeline(f"cc-{unique}", "registry.local/web:2.1.0", stages)
    with pytest.raises(UserError) as refused:
        await cli.start(second, False, 60, fake_fleet_worker, True)
    assert refused.value.code == ExitCode.CONFLICT and "running another bundle" in str(refused.value)
    assert await cli.start(first, False, 60, fake_fleet_worker, True) == ExitCode.OK, "the same bundle attaches"

    superseding = pipeline(f"cc-{unique}", "registry.local/web:2.1.0", stages, concurrencyPolicy="supersede")
    assert await cli.start(superseding, True, 120, fake_fleet_worker, True) == ExitCode.OK
    runs = [e async for e in dev_client.list_workflows(f"WorkflowId = 'pipeline/test/cc-{unique}'")]
    assert len(runs) == 2
    ended = {e.run_id: await dev_client.get_workflow_handle(e.id, run_id=e.run_id, result_type=RolloutStatus).result()
             for e in runs}
    phases = sorted((s.phase.value, s.reason) for s in ended.values())
    assert phases == [("Degraded", "RolloutAborted"), ("Healthy", "")], phases

    # A CI job re-run after the delivery ended: delivered, nothing started; --again runs it anew.
    assert await cli.start(superseding, True, 120, fake_fleet_worker, True) == ExitCode.OK
    assert len([e async for e in dev_client.list_workflows(f"WorkflowId = 'pipeline/test/cc-{unique}'")]) == 2
    assert await cli.start(superseding, True, 120, fake_fleet_worker, True, again=True) == ExitCode.OK
    assert len([e async for e in dev_client.list_workflows(f"WorkflowId = 'pipeline/test/cc-{unique}'")]) == 3
