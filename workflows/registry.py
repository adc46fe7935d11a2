"""Which workflow runs which strategy: the CLI starts by it, the worker registers all of them."""

from workflows.canary import CanaryRollout

STRATEGY_WORKFLOWS = {"canary": CanaryRollout}
ALL_WORKFLOWS = list(STRATEGY_WORKFLOWS.values())
