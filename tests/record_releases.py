"""Recorded scenarios of the staged-release workflows (StagedRelease, RefreshMetadata), for
tests/record_histories.py: the channel activities faked by name (replay runs only workflow code)."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client

from models.analysis import MeasureInput, Measurement
from models.approvals import HaltRequest, PromoteRequest, ResumeRequest, RollbackRequest
from models.flags import FlagInput, FlagState
from models.release import ReleaseInput, parse_release
from models.status import RolloutStatus
from models.updater import (
    Artifact,
    ChannelInput,
    ChannelRelease,
    PublishInput,
    RefreshInput,
    RefreshResult,
    UploadInput,
)
from tests.helpers import eventually, started_status
from workflows.refresh import RefreshMetadata
from workflows.release import StagedRelease

OLD = Artifact(name="app-1.0.0.tar.gz", version="1.0.0", platform="linux-x86_64", sha256="a" * 64, length=100)


def channel_fakes(before: int = 0) -> list:
    """The channels' activities faked; the flag's share read before the release is `before` basis points."""
    versions = {"n": 1}

    @activity.defn(name="upload_artifact")
    def upload_artifact(request: UploadInput) -> Artifact:
        return Artifact(name="app-2.0.0.tar.gz", version=request.version, platform=request.platform, sha256="b" * 64,
                        length=200)

    @activity.defn(name="read_channel")
    def read_channel(request: ChannelInput) -> ChannelRelease:
        return ChannelRelease(current=OLD, versions={"stable": 1})

    @activity.defn(name="publish_release")
    def publish_release(request: PublishInput) -> ChannelRelease:
        versions["n"] += 1
        return ChannelRelease(current=request.artifact, previous=request.previous, state=request.state,
                              release=request.release, versions={"stable": versions["n"], "snapshot": versions["n"]})

    @activity.defn(name="refresh_timestamp")
    def refresh_timestamp(request: RefreshInput) -> RefreshResult:
        return RefreshResult(timestamp_version=7, snapshot_version=3, resigned=["timestamp"])

    @activity.defn(name="set_flag_share")
    def set_flag_share(request: FlagInput) -> FlagState:
        return FlagState(variant=request.variant, basis_points=request.basis_points, revision="r")

    @activity.defn(name="read_flag_share")
    def read_flag_share(request: FlagInput) -> FlagState:
        entries = [[request.variant, before], ["off", 10_000 - before]] if before else None
        return FlagState(variant=request.variant, basis_points=before, revision="r0", entries=entries)

    @activity.defn(name="measure")
    def measure(request: MeasureInput) -> Measurement:
        return Measurement(phase="Failed", value="[0.9]", query="crash ratio")

    return [upload_artifact, read_channel, publish_release, refresh_timestamp, set_flag_share, read_flag_share, measure]


def _release(name: str, phases: list[dict], channel: dict | None = None, artifact: dict | None = None, **spec):
    return parse_release({
        "apiVersion": "rollouts.durable.dev/v1alpha1", "kind": "Release",
        "metadata": {"name": name, "environment": "recorded"},
        "spec": {"artifact": artifact or {"file": "/dist/app-2.0.0.tar.gz", "version": "2.0.0", "platform": "linux-x86_64"},
                 "channel": channel or {"updater": {"repository": {"bucket": "updates", "prefix": "app"},
                                                    "channel": "stable"}},
                 "phases": phases, **spec}})


async def _start(client: Client, queue: str, release):
    return await client.start_workflow(StagedRelease.run, ReleaseInput(release=release, requested_by="recorder"),
                                       id=release.rollout_id, task_queue=queue)


async def _reason(handle, reason: str, step: int):
    async def check():
        s = await started_status(handle)  # a train's child may not be started yet
        return s if s is not None and s.reason == reason and s.current_step == step else None

    return await eventually(check, timeout=30, what=f"{reason} at {step}")


async def halted_resumed_promoted(client: Client, queue: str):
    """A timed bake, a halt by signal mid-bake, resume by update, promote --full."""
    handle = await _start(client, queue, _release("recorded-release", [{"percent": 10, "bake": "2s"},
                                                                      {"percent": 50, "bake": "1h"},
                                                                      {"percent": 80, "bake": "1h"}]))
    return await halt_resume_promote(handle, 1)


async def halt_resume_promote(handle, step: int):
    """Halted by signal while `step` bakes, resumed by update, promoted --full; the ended handle."""
    await _reason(handle, "Baking", step)
    await handle.signal("halt", HaltRequest(by="web-ui"))
    await _reason(handle, "Halted", step)
    await handle.execute_update("resume", ResumeRequest(by="oncall"))
    await _reason(handle, "Baking", step)
    await handle.execute_update("promote", PromoteRequest(by="rm", full=True))
    await handle.result()
    return handle


async def rolled_back(client: Client, queue: str):
    handle = await _start(client, queue, _release("recorded-rollback", [{"percent": 25, "bake": "1h"}]))
    await _reason(handle, "Baking", 0)
    await handle.execute_update("rollback", RollbackRequest(by="oncall", reason="crash loop"))
    await handle.result()
    return handle


ERRORS = {"name": "errors", "metrics": [{"name": "errors", "successCondition": "result[0] < 0.5",
                                         "provider": {"prometheus": {"address": "http://127.0.0.1:1", "query": "errors"}}}]}
ERRORS_GATE = {"templates": [{"templateName": "errors"}]}
FLAG = {"flag": {"file": "/etc/flags.json", "flag": "new-checkout"}}


async def flag_gate_failed(client: Client, queue: str):
    release = _release("recorded-flag", [{"percent": 10}, {"percent": 50, "analysis": ERRORS_GATE}], channel=FLAG,
                       artifact={"variant": "on"}, analysis={"templates": [ERRORS]})
    handle = await _start(client, queue, release)
    await handle.result()
    return handle


async def flag_back_to_before(client: Client, queue: str):
    """The flag was at 5 % before the release; the first gate fails: back to those entries, not 0 %."""
    release = _release("recorded-flag-before", [{"percent": 10, "analysis": ERRORS_GATE}], channel=FLAG,
                       artifact={"variant": "on"}, analysis={"templates": [ERRORS]})
    handle = await _start(client, queue, release)
    await handle.result()
    return handle


async def halted_by_gate(client: Client, queue: str):
    """onFailure: halt — the failed gate halts (published before the status says so), rollback by signal."""
    template = {"name": "crashes", "metrics": [{"name": "crashes", "successCondition": "result[0] < 0.5",
                                                "provider": {"prometheus": {"address": "http://127.0.0.1:1",
                                                                            "query": "crashes"}}}]}
    release = _release("recorded-halted-by-gate", [{"percent": 10, "analysis": {"templates": [
        {"templateName": "crashes"}]}}, {"percent": 50}], onFailure="halt", analysis={"templates": [template]})
    handle = await _start(client, queue, release)
    await _reason(handle, "Halted", 0)
    await handle.signal("rollback", RollbackRequest(by="web-ui", reason="crash rate"))
    await handle.result()
    return handle


async def refreshed(client: Client, queue: str):
    from models.updater import Repository

    handle = await client.start_workflow(RefreshMetadata.run, RefreshInput(repository=Repository(bucket="updates")),
                                         id="refresh/recorded", task_queue=queue)
    await handle.result()
    return handle


async def train_proven_submitter(client: Client, queue: str):
    """A release train takes a release whose approval forbids self-approval under identity by update with
    the submitter's ID token (workflow.patched "train-proves-submitters"): checked, the release run as its
    child under the proven name (alice, though `by` says mallory); bob approves it; the train's history."""
    from models.approvals import ApproveRequest
    from models.train import SubmitRelease, SubmitResult, TrainInput, TrainStatus, train_id
    from tests.helpers import sealed_start, server_time, workers_token_key
    from tests.record_decisions import local_issuer
    from workflows.train import ReleaseTrain

    with local_issuer() as issuer:
        guarded = {"approvers": ["bob@example.com"], "forbidSelfApproval": True,
                   "identity": {"issuer": issuer.url, "audience": "durable-rollouts:{rollout}"}}
        release = _release("recorded-train-proven", [{"percent": 50, "approval": guarded}, {"percent": 100}])
        train = await client.start_workflow(ReleaseTrain.run, TrainInput(name="recorded-proven", environment="recorded"),
                                            id=train_id("recorded", "recorded-proven"), task_queue=queue)
        audience = f"durable-rollouts:{release.rollout_id}"
        token = issuer.mint(audience, email="alice@example.com", at=await server_time(client))
        with workers_token_key():  # held while the train's update checks the sealed token
            queued = await train.execute_update("submit", SubmitRelease(
                release=release, by="mallory", starter_token=sealed_start(token, release)), result_type=SubmitResult)
        child = client.get_workflow_handle(queued.workflow_id, result_type=RolloutStatus)
        status = await _reason(child, "WaitingForApproval", 0)
        await child.execute_update("approve", ApproveRequest(id_token=issuer.mint(
            audience, email="bob@example.com", at=status.approval.opened_at.timestamp())))
        await child.result()

        async def released():
            return (await train.query("status", result_type=TrainStatus)).released == 1

        await eventually(released, timeout=30, what="the train's release done")
        await train.terminate("recorded")
        return train


async def train_bounded_queue(client: Client, queue: str):
    """A train that lets two releases wait (maxQueued 2, workflow.patched "train-bounded-queue"): the first
    waits for approval while two queue; a third is refused by update (not in the history) and dropped by
    signal; approved, the train runs them, then more until it continues as new before 100 events (its first run
    is recorded: the patch, the dropped signal, the continue-as-new carrying maxQueued)."""
    from temporalio.client import WorkflowUpdateFailedError

    from models.approvals import ApproveRequest
    from models.train import SubmitRelease, SubmitResult, TrainInput, TrainStatus, train_id
    from workflows.train import ReleaseTrain

    gated = _release("recorded-train-bounded", [{"percent": 50, "approval": {"approvers": ["bob"]}}, {"percent": 100}])
    plain = _release("recorded-train-bounded", [{"percent": 100}])
    train = await client.start_workflow(
        ReleaseTrain.run, TrainInput(name="recorded-bounded", environment="recorded", max_queued=2,
                                     continue_after_events=100),
        id=train_id("recorded", "recorded-bounded"), task_queue=queue)
    first = await train.execute_update("submit", SubmitRelease(release=gated, by="ci"), result_type=SubmitResult)

    async def running():
        return (await train.query("status", result_type=TrainStatus)).running == first.workflow_id

    await eventually(running, timeout=30, what="the first release running")
    for _ in range(2):
        await train.execute_update("submit", SubmitRelease(release=plain, by="ci"))
    try:
        await train.execute_update("submit", SubmitRelease(release=plain, by="ci"))
        raise AssertionError("a third waiting release was queued past maxQueued 2")
    except WorkflowUpdateFailedError:
        pass
    await train.signal("submit", SubmitRelease(release=plain, by="web-ui"))
    child = client.get_workflow_handle(first.workflow_id, result_type=RolloutStatus)
    await _reason(child, "WaitingForApproval", 0)
    await child.execute_update("approve", ApproveRequest(by="bob"))

    async def released():
        return (await train.query("status", result_type=TrainStatus)).released == 3

    await eventually(released, timeout=60, what="the train's three releases done")

    async def continued():  # more releases until the history nears 100 events and the train continues as new
        if (await train.query("status", result_type=TrainStatus)).runs >= 2:
            return True
        try:
            await train.execute_update("submit", SubmitRelease(release=plain, by="ci"))
        except WorkflowUpdateFailedError:
            pass  # refused near the limit while a release runs or waits; an idle train takes it and continues
        return False

    await eventually(continued, timeout=60, interval=1, what="the train continued as new")
    await client.get_workflow_handle(train.id).terminate("recorded")
    return client.get_workflow_handle(train.id, run_id=train.first_execution_run_id)


def _identity_fakes() -> list:
    from tests.record_decisions import identity_activities

    return channel_fakes() + identity_activities()


SCENARIOS = [
    ("release-halted-resumed-promoted", halted_resumed_promoted, channel_fakes),
    ("release-rolled-back", rolled_back, channel_fakes),
    ("release-flag-gate-failed", flag_gate_failed, channel_fakes),
    ("refresh-metadata", refreshed, channel_fakes),
    ("release-halted-by-gate", halted_by_gate, channel_fakes),
    ("release-flag-back-to-before", flag_back_to_before, lambda: channel_fakes(before=500)),
    ("train-proven-submitter", train_proven_submitter, _identity_fakes),
    ("train-bounded-queue", train_bounded_queue, channel_fakes),
]
