"""Replay safety: recorded histories of the released workflows replay without non-determinism against
the current code (re-record with `python -m tests.record_histories` and, for the runs that continued
as new, `python -m tests.record_continued`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from models.status import RolloutInput, RolloutStatus
from workflows.canary import CanaryRollout
from workflows.registry import ALL_WORKFLOWS

HISTORIES = sorted((Path(__file__).resolve().parent / "histories").glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path):
    replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(load(path), raise_on_replay_failure=True)
    assert result.replay_failure is None


def test_every_strategy_has_recorded_histories():
    assert {p.stem for p in HISTORIES} >= {
        "canary-promoted", "canary-aborted", "canary-failed",
        "rolling-update-healthy", "rolling-update-undone", "recreate-healthy",
        "blue-green-healthy", "blue-green-switched-back", "undo-healthy", "restart-healthy",
        "ab-test-promoted", "rolling-update-windowed", "rollback-window-undone",
        "canary-analysed", "canary-webhooks", "analysis-run-successful",
        "canary-approved", "canary-skipped-and-full", "blue-green-approved", "blue-green-gradual",
        "blue-green-gradual-held",
        "canary-continued-as-new", "canary-resumed-promoted", "canary-approval-resumed", "observe-target",
        "release-halted-resumed-promoted", "release-rolled-back", "release-flag-gate-failed", "refresh-metadata",
        "release-halted-by-gate", "release-flag-back-to-before", "release-google-play", "release-app-store",
        "release-microsoft-store",
        "release-intune-rings", "release-mdm-aborted", "pipeline-delivered", "pipeline-rolled-back",
        "canary-verified-approval", "canary-sealed-vote", "canary-verified-folded", "canary-starter-proven",
        "canary-resume-refused", "train-proven-submitter",
        "release-google-play-draft-first", "release-app-store-releasable", "release-intune-kept-as-read",
        "pipeline-children-named-by-pipeline", "canary-analysed-by-hash",
        "statefulset-canary-promoted", "statefulset-canary-aborted", "daemonset-waves-promoted",
        "daemonset-wave-aborted",
    }


@workflow.defn(name="CanaryRollout", sandboxed=False)  # defined in a test module: no sandbox
class CanaryWithoutTheFirstStep(CanaryRollout):
    """A careless change: skip the first step without `workflow.patched`."""

    @workflow.init
    def __init__(self, request: RolloutInput) -> None:
        spec = request.rollout.spec
        steps = spec.strategy.canary.steps[1:]
        canary = spec.strategy.canary.model_copy(update={"steps": steps})
        strategy = spec.strategy.model_copy(update={"canary": canary})
        rollout = request.rollout.model_copy(update={"spec": spec.model_copy(update={"strategy": strategy})})
        super().__init__(request.model_copy(update={"rollout": rollout}))

    @workflow.run
    async def run(self, request: RolloutInput) -> RolloutStatus:
        return await super().run(request)


async def test_an_unguarded_change_is_caught_by_replay():
    replayer = Replayer(workflows=[CanaryWithoutTheFirstStep], data_converter=pydantic_data_converter)
    canary = next(p for p in HISTORIES if p.stem == "canary-promoted")
    result = await replayer.replay_workflow(load(canary), raise_on_replay_failure=False)
    assert result.replay_failure is not None
    assert "nondetermin" in f"{type(result.replay_failure).__name__} {result.replay_failure}".lower()


@workflow.defn(name="CanaryRollout", sandboxed=False)
class CanaryWithAGuardedChange(CanaryRollout):
    """The same change done right: new runs skip the first step, runs recorded before it do not."""

    @workflow.run
    async def run(self, request: RolloutInput) -> RolloutStatus:
        if workflow.patched("skip-first-step"):
            canary = self.canary_spec()
            trimmed = canary.model_copy(update={"steps": canary.steps[1:]})
            self.canary_spec = lambda: trimmed  # type: ignore[method-assign]
        return await super().run(request)


async def test_a_change_guarded_by_patched_replays_every_recorded_canary():
    """The procedure in the README: guard the new logic with `workflow.patched(ID)`, replay every
    recorded history (old runs take the old branch), record a new history, later deprecate the patch."""
    replayer = Replayer(workflows=[CanaryWithAGuardedChange], data_converter=pydantic_data_converter)
    canaries = [p for p in HISTORIES if p.stem.startswith("canary-")]
    assert len(canaries) >= 6
    for path in canaries:
        result = await replayer.replay_workflow(load(path), raise_on_replay_failure=False)
        assert result.replay_failure is None, f"{path.stem}: {result.replay_failure}"
