"""Every workflow the worker registers; which one runs which strategy is `workflows/strategies.py`."""

from workflows.analysis_run import AnalysisRun
from workflows.observe import ObserveTarget
from workflows.pipeline import PipelineRun
from workflows.refresh import RefreshMetadata
from workflows.release import StagedRelease
from workflows.revision import RevisionRollout
from workflows.strategies import ACTION_WORKFLOWS, STRATEGY_WORKFLOWS
from workflows.train import ReleaseTrain
from workflows.window import RollbackWindow

# `kind: Release`: one workflow for every channel.
RELEASE_WORKFLOW = StagedRelease
# `kind: Pipeline`: stages of rollouts in waves.
PIPELINE_WORKFLOW = PipelineRun
ALL_WORKFLOWS = [*STRATEGY_WORKFLOWS.values(), RevisionRollout, RollbackWindow, AnalysisRun, ObserveTarget,
                 StagedRelease, RefreshMetadata, ReleaseTrain, PipelineRun]
__all__ = ["ACTION_WORKFLOWS", "ALL_WORKFLOWS", "PIPELINE_WORKFLOW", "RELEASE_WORKFLOW", "STRATEGY_WORKFLOWS"]
