"""Which workflow runs which strategy (the CLI starts by it; a pipeline starts its targets by it)."""

from workflows.abtest import ABTestRollout
from workflows.bluegreen import BlueGreenRollout
from workflows.canary import CanaryRollout
from workflows.recreate import RecreateRollout
from workflows.revision import RevisionRollout
from workflows.rolling import RollingUpdateRollout

STRATEGY_WORKFLOWS = {
    "canary": CanaryRollout,
    "blueGreen": BlueGreenRollout,
    "abTest": ABTestRollout,
    "rollingUpdate": RollingUpdateRollout,
    "recreate": RecreateRollout,
}
# `rollout undo` / `rollout restart` of any rollout's target.
ACTION_WORKFLOWS = {"undo": RevisionRollout, "restart": RevisionRollout}
