"""Pipeline logic on the time-skipping test server: the strategy workflows are the real ones, the
cluster, registry and check activities fakes (tests/pipeline_helpers.py)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from activities.identity import IdentityActivities
from activities.sealing import KEY_FILE_ENV
from localcluster.issuer import LocalIssuer
from models.approvals import ApproveRequest
from models.pipeline import PipelineInput
from models.status import AbortRequest, Phase, PromoteRequest, RolloutStatus
from tests.helpers import eventually, sealed_start, started_status, token_key_file
from tests.pipeline_helpers import DIGEST, FakeFleet, pipeline, stage
from workflows.registry import ALL_WORKFLOWS

NEW = "registry.local/web:2.0.0"


@pytest.fixture
async def run_pipeline(time_skipping_env, unique):
    workers = []

    async def start(fleet: FakeFleet, document):
        queue = f"pipeline-{unique}-{len(workers)}"
        worker = Worker(time_skipping_env.client, task_queue=queue, workflows=ALL_WORKFLOWS, activities=fleet.activities())
        await worker.__aenter__()
        workers.append(worker)
        return await time_skipping_env.client.start_workflow(
            "Pipeline", PipelineInput(pipeline=document, requested_by="ci"), id=document.rollout_id, task_queue=queue,
            result_type=RolloutStatus)

    yield start
    for worker in workers:
        await worker.__aexit__(None, None, None)


async def refused(handle, update: str, request) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as error:
        await handle.execute_update(update, request)
    return str(error.value.cause)


def states(status: RolloutStatus) -> dict[str, str]:
    return {f"{s.name}/{t.context}": t.state for s in status.pipeline.stages for w in s.waves for t in w.targets}


async def test_day_long_soaks_and_a_weekend_window_finish_in_seconds(run_pipeline, time_skipping_env, unique):
    weekend = {"timezone": "UTC", "allow": [{"days": ["Sat", "Sun"]}]}
    doc = pipeline(f"soak-{unique}", NEW, [
        stage("dev", "shop", ["dev-1"]),
        stage("qa", "shop", ["qa-1"], gate={"soak": "1d"}),
        stage("staging", "shop", ["stg-1", "stg-2"], maxParallel=2, gate={"soak": "1d"}),
        stage("prod", "shop", ["eu-1", "us-1", "ap-1"], maxParallel=2, bake="6h",
              gate={"soak": "2d", "executionWindows": weekend,
                    "checks": [{"name": "infra", "metric": {"name": "nodes", "successCondition": "result == 1",
                                                            "provider": {"kubernetes": {"context": "eu-1"}}}}]},
              waves=[{"targets": [{"context": "eu-1"}, {"context": "us-1"}], "maxParallel": 2},
                     {"targets": [{"context": "ap-1"}]}]),
    ])
    fleet = FakeFleet()
    began = time.monotonic()
    handle = await run_pipeline(fleet, doc)
    final = await handle.result()
    took = time.monotonic() - began
    assert final.phase is Phase.HEALTHY, final.message
    assert set(states(final).values()) == {"verified"}
    assert {i for v in fleet.images.values() for i in v[1:]} == {f"{NEW}@{DIGEST}"}, "one pinned digest everywhere"
    events = {h.event: h.at for h in final.history}
    verified = {h.detail.split(":")[0]: h.at for h in final.history if h.event == "stage-verified"}
    started = [h for h in final.history if h.event == "target-started"]
    first_prod = next(h.at for h in started if h.detail.startswith("prod/"))
    assert verified["qa"] - verified["dev"] >= timedelta(days=1)
    assert first_prod - verified["staging"] >= timedelta(days=2), "the soak held prod back two days"
    assert first_prod.weekday() in (5, 6), f"prod started on a {first_prod:%A}, outside the weekend window"
    ap = next(h.at for h in started if h.detail.startswith("prod/ap-1"))
    assert ap - first_prod >= timedelta(hours=6), "the bake between prod's waves"
    assert "check" in events and final.pipeline.stages[3].checks[0].phase == "Successful"
    target = final.pipeline.stages[3].waves[1].targets[0]
    child = await time_skipping_env.client.get_workflow_handle(target.workflow_id, result_type=RolloutStatus).result()
    assert (child.started_by, child.initiator) == (f"{doc.rollout_id} (ci)", "ci"), \
        "a target's approvals refuse the pipeline's starter (forbidSelfApproval), not the pipeline"
    print(f"4 stages over {(final.finished_at - final.started_at).days} days of workflow time in {took:.1f}s")


async def test_health_on_the_previous_revision_does_not_complete_the_wave(run_pipeline, unique):
    """us-1 says its rollout went through, but the Deployment still runs 1.0.0 (something put it back):
    the target is not verified, the wave does not complete, the next wave never starts."""
    doc = pipeline(f"stale-{unique}", NEW, [
        stage("prod", "shop", [], waves=[{"targets": [{"context": "eu-1"}, {"context": "us-1"}], "maxParallel": 2},
                                         {"targets": [{"context": "ap-1"}]}])])
    fleet = FakeFleet(stale=("us-1",))
    final = await (await run_pipeline(fleet, doc)).result()
    assert final.phase is Phase.DEGRADED and final.reason == "TargetFailed"
    us = final.pipeline.stages[0].waves[0].targets[1]
    assert (us.state, us.reason) == ("failed", "StaleRevision")
    assert "healthy on registry.local/web:1.0.0" in us.message and "us-1" in final.message
    assert states(final)["prod/ap-1"] == "pending" and "roll ap-1" not in fleet.calls
    assert final.pipeline.stages[0].waves[1].state == "skipped"


async def test_fail_fast_and_rollback_completed(run_pipeline, unique):
    doc = pipeline(f"ff-{unique}", NEW, [
        stage("prod", "shop", ["eu-1", "us-1", "ap-1"], maxParallel=1, onFailure="rollbackCompleted")])
    fleet = FakeFleet(bad=("us-1",))
    final = await (await run_pipeline(fleet, doc)).result()
    assert final.phase is Phase.DEGRADED and final.reason == "TargetFailed"
    assert "us-1" in final.message and "ProgressDeadlineExceeded" in final.message and "rolled back eu-1" in final.message
    assert states(final) == {"prod/eu-1": "rolledBack", "prod/us-1": "failed", "prod/ap-1": "pending"}
    assert fleet.images[("eu-1", "shop", "web")] == ["registry.local/web:1.0.0"], "eu-1 is back on the version before"
    assert "roll ap-1" not in fleet.calls


async def test_max_failures_tolerates_then_stops(run_pipeline, unique):
    doc = pipeline(f"mf-{unique}", NEW, [
        stage("prod", "shop", ["a", "b", "c", "d"], failFast=False, maxFailures=1)])
    fleet = FakeFleet(bad=("a", "c"))
    final = await (await run_pipeline(fleet, doc)).result()
    assert final.phase is Phase.DEGRADED
    assert states(final) == {"prod/a": "failed", "prod/b": "verified", "prod/c": "failed", "prod/d": "pending"}
    assert "2 > maxFailures" in " ".join(h.detail for h in final.history)


async def test_approval_gate_then_abort_reaches_the_running_target(run_pipeline, time_skipping_env, unique):
    doc = pipeline(f"gate-{unique}", NEW, [
        stage("staging", "shop", ["stg-1"]),
        stage("prod", "shop", ["eu-1", "us-1"], maxParallel=2,
              gate={"approval": {"approvers": ["alice", "bob", "ci"], "minApprovals": 2, "forbidSelfApproval": True}}),
    ])
    fleet = FakeFleet(seconds=3)
    handle = await run_pipeline(fleet, doc)

    async def waiting():
        s = await handle.query("status", result_type=RolloutStatus)
        return s if s.approval is not None else None

    s = await eventually(waiting, timeout=60, what="the prod approval")
    assert s.pipeline.stages[1].state == "gate" and states(s)["staging/stg-1"] == "verified"
    assert "started this rollout" in await refused(handle, "approve", ApproveRequest(by="ci"))
    assert "not an approver" in await refused(handle, "approve", ApproveRequest(by="mallory"))
    await handle.execute_update("approve", ApproveRequest(by="alice"))
    await handle.signal("approve", ApproveRequest(by="bob"))  # the Web UI's door

    async def running():
        s = await handle.query("status", result_type=RolloutStatus)
        return s if list(states(s).values()).count("running") == 2 else None

    await eventually(running, timeout=30, what="both prod targets running")
    assert "not paused" in await refused(handle, "promote", PromoteRequest(by="alice"))
    await handle.execute_update("abort", AbortRequest(by="alice", reason="error budget"))
    final = await handle.result()
    assert final.phase is Phase.DEGRADED and final.reason == "RolloutAborted" and final.message == "error budget"
    assert {states(final)["prod/eu-1"], states(final)["prod/us-1"]} == {"aborted"}
    children = [t for w in final.pipeline.stages[1].waves for t in w.targets]
    assert all(t.reason == "RolloutAborted" and t.message == "pipeline: error budget" for t in children)
    assert fleet.calls.count("undo eu-1") == 1 and fleet.calls.count("undo us-1") == 1, fleet.calls


async def test_verified_needs_pods_and_stays_verified_until_the_end(run_pipeline, unique):
    """A target whose new revision runs no pod is not verified (unless the stage allows 0 replicas); a
    target put back after its wave is found when its stage ends, and the pipeline does not end Healthy."""
    empty = await (await run_pipeline(FakeFleet(empty=("eu-1",)), pipeline(f"empty-{unique}", NEW, [
        stage("prod", "shop", ["eu-1"])]))).result()
    eu = empty.pipeline.stages[0].waves[0].targets[0]
    assert (empty.phase, empty.reason, eu.state, eu.reason) == (Phase.DEGRADED, "TargetFailed", "failed", "NoPods")
    assert eu.message.startswith(f"no pod of its current revision runs {NEW}@{DIGEST} (0/0 ready)"), eu.message
    allowed = await (await run_pipeline(FakeFleet(empty=("eu-1",)), pipeline(f"allowed-{unique}", NEW, [
        stage("prod", "shop", ["eu-1"], allowZeroReplicas=True)]))).result()
    assert allowed.phase is Phase.HEALTHY, allowed.message

    fleet = FakeFleet(drifting=("dev-1",))
    drifted = await (await run_pipeline(fleet, pipeline(f"drift-{unique}", NEW, [
        stage("dev", "shop", ["dev-1"]), stage("prod", "shop", ["eu-1"])]))).result()
    assert (drifted.phase, drifted.reason) == (Phase.DEGRADED, "StaleRevision"), drifted.message
    assert drifted.message == (f"stage dev: dev-1: read again when its stage ended, it runs registry.local/web:1.0.0 "
                               f"(4/4 ready), not the bundle's {NEW}@{DIGEST}")
    assert "roll eu-1" not in fleet.calls and states(drifted)["prod/eu-1"] == "pending"

    fleet = FakeFleet(drifting=("dev-1",), drift_after=2)  # put back after its stage ended: the last read finds it
    late = await (await run_pipeline(fleet, pipeline(f"late-{unique}", NEW, [
        stage("dev", "shop", ["dev-1"]), stage("prod", "shop", ["eu-1"])]))).result()
    assert (late.phase, late.reason) == (Phase.DEGRADED, "StaleRevision"), late.message
    assert late.message.startswith("stage dev: dev-1: read again before the pipeline ended, it runs "), late.message
    assert [(s.name, s.state) for s in late.pipeline.stages] == [("dev", "failed"), ("prod", "verified")], \
        "the stage that drifted is the one marked failed, not the last one"


async def test_a_soak_reads_the_stage_before_for_its_own_image(run_pipeline, unique):
    """A bundle of two images: dev deploys the api, prod the web after a soak; the soak reads dev again for
    the api's pinned image, not prod's web."""
    api = "registry.local/api:3.1.0"
    doc = pipeline(f"two-{unique}", NEW, [stage("dev", "shop", ["dev-1"], image="api"),
                                          stage("prod", "shop", ["eu-1"], image="web", gate={"soak": "1h"})],
                   bundle={"images": {"web": NEW, "api": api}})
    final = await (await run_pipeline(FakeFleet(), doc)).result()
    assert final.phase is Phase.HEALTHY, final.message
    assert any(h.event == "soaked" and f"{api}@{DIGEST}" in h.detail for h in final.history), final.history


async def test_the_pipelines_proven_starter_holds_in_its_targets(time_skipping_env, unique, tmp_path, monkeypatch):
    """A target's rollout forbids self-approval under identity: the pipeline's start must be proven (none:
    nothing rolls out), and its targets' rollouts refuse the proven starter (they inherit the proof as
    child workflows; a direct start claiming it is refused: tests/test_starter.py)."""
    monkeypatch.setenv(KEY_FILE_ENV, token_key_file(tmp_path))  # the in-process worker's token key
    client, issuer, http = time_skipping_env.client, LocalIssuer().start(), httpx.Client()

    def document(name: str):
        prod = stage("prod", "shop", ["eu-1"])
        prod["rollout"]["spec"]["approval"] = {
            "approvers": ["alice@example.com", "bob@example.com"], "forbidSelfApproval": True,
            "identity": {"issuer": issuer.url, "audience": "durable-rollouts:{rollout}"}}
        return pipeline(f"{name}-{unique}", NEW, [prod])

    fleet, queue = FakeFleet(), f"proven-{unique}"
    identity = IdentityActivities(http)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            async with Worker(client, task_queue=queue, workflows=ALL_WORKFLOWS, activity_executor=pool,
                              activities=[*fleet.activities(), identity.fetch_signing_keys, identity.verify_vote]):
                bare = document("bare")
                unproven = await client.execute_workflow("Pipeline", PipelineInput(pipeline=bare, requested_by="ci"),
                                                         id=bare.rollout_id, task_queue=queue, result_type=RolloutStatus)
                assert unproven.phase is Phase.DEGRADED and unproven.reason == "InvalidStart"
                assert ("spec.stages[0].rollout.spec.approval forbids self-approval under identity: the start must be "
                        "proven") in unproven.message and not fleet.calls, (unproven.message, fleet.calls)
                doc = document("proven")
                now = (await time_skipping_env.get_current_time()).timestamp()  # the server's clock: skipped ahead
                alice = issuer.mint(f"durable-rollouts:{doc.rollout_id}", email="alice@example.com", at=now)
                token = sealed_start(alice, doc)
                handle = await client.start_workflow(
                    "Pipeline", PipelineInput(pipeline=doc, requested_by="ci", starter_token=token), id=doc.rollout_id,
                    task_queue=queue, result_type=RolloutStatus)

                async def child_waiting():
                    s = await handle.query("status", result_type=RolloutStatus)
                    target = s.pipeline.stages[0].waves[0].targets[0]
                    if not target.workflow_id:
                        return None
                    child = await started_status(client.get_workflow_handle(target.workflow_id))
                    return (s, child) if child is not None and child.approval is not None and child.approval.identity is not None else None

                status, child = await eventually(child_waiting, timeout=60, what="the target's approval")
                assert (status.initiator, status.initiator_proven) == ("alice@example.com", True)
                assert (child.initiator, child.initiator_proven) == ("alice@example.com", True)
                target = client.get_workflow_handle(child.rollout_id)
                audience, opened = f"durable-rollouts:{child.rollout_id}", child.approval.opened_at.timestamp()
                assert "alice@example.com started this rollout" in await refused(target, "approve", ApproveRequest(
                    id_token=issuer.mint(audience, email="alice@example.com", at=opened)))
                await target.execute_update("approve", ApproveRequest(id_token=issuer.mint(
                    audience, email="bob@example.com", at=opened)))
                final = await handle.result()
                assert final.phase is Phase.HEALTHY, final.message
    finally:
        issuer.stop()
        http.close()
