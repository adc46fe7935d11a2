"""Which workflow runs which strategy: the CLI starts by it, the worker registers all of them."""

from workflows.bluegreen import BlueGreenRollout
from workflows.canary import CanaryRollout
from workflows.recreate import RecreateRollout
from workflows.rolling import RollingUpdateRollout

STRATEGY_WORKFLOWS = {
    "canary": CanaryRollout,
    "blueGreen": BlueGreenRollout,
    "rollingUpdate": RollingUpdateRollout,
    "recreate": RecreateRollout,
}
ALL_WORKFLOWS = list(STRATEGY_WORKFLOWS.values())
