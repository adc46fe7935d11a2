"""Which workflow runs which strategy: the CLI starts by it, the worker registers all of them."""

from workflows.abtest import ABTestRollout
from workflows.analysis_run import AnalysisRun
from workflows.bluegreen import BlueGreenRollout
from workflows.canary import CanaryRollout
from workflows.observe import ObserveTarget
from workflows.recreate import RecreateRollout
from workflows.refresh import RefreshMetadata
from workflows.release import StagedRelease
from workflows.revision import RevisionRollout
from workflows.rolling import RollingUpdateRollout
from workflows.train import ReleaseTrain
from workflows.window import RollbackWindow

STRATEGY_WORKFLOWS = {
    "canary": CanaryRollout,
    "blueGreen": BlueGreenRollout,
    "abTest": ABTestRollout,
    "rollingUpdate": RollingUpdateRollout,
    "recreate": RecreateRollout,
}
# `rollout undo` / `rollout restart` of any rollout's target.
ACTION_WORKFLOWS = {"undo": RevisionRollout, "restart": RevisionRollout}
# `kind: Release`: one workflow for every channel.
RELEASE_WORKFLOW = StagedRelease
ALL_WORKFLOWS = [*STRATEGY_WORKFLOWS.values(), RevisionRollout, RollbackWindow, AnalysisRun, ObserveTarget,
                 StagedRelease, RefreshMetadata, ReleaseTrain]
