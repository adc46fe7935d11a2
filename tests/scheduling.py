"""How a parallel run (pytest-xdist, `scripts/test`) shares the suite among its workers.

A work unit is a whole test module, so each module's fixtures and module state live in one process as
in a serial run; the modules that start the extra clusters share one unit (one fleet of clusters in the
run, not one a worker); the SPREAD modules' tests are units of one test each. Units are handed out
longest first, so no worker is left with a long tail.

xdist's own `--dist loadgroup` marks groups by rewriting node IDs, which pytest 9.2 no longer lets a
plugin do (pytest-dev/pytest-xdist#1386: the marks are silently ignored); this scheduler reads the
module from the node ID instead, which works on every pytest.
"""

from __future__ import annotations

from pathlib import PurePosixPath

# Modules whose tests share nothing but session fixtures: their tests spread over the workers one by one.
SPREAD = {"test_matrix.py"}
# Modules that use the three clusters (the `fleet` fixture of conftest.py): one unit, one fleet started.
# tests/conftest.py checks at collection that every test using that fixture is in one of these.
CLUSTER_FLEET = {"test_pipeline_clusters.py", "test_pipeline_ci.py"}
# The units that took longest in a serial run, started first (the matrix cells are short and fill gaps).
LONGEST_FIRST = ["fleet", "test_worker_image", "test_cli", "test_crash", "test_ecs_durability", "test_ecs_strategies", "test_ecs_canary", "test_compose_durability",
                 "test_compose_canary", "test_compose_pipeline", "test_release_cli", "test_install", "test_routers", "test_release_train",
                 "test_scale_out", "test_analysis_cluster", "test_identity", "test_canary_cluster"]


def unit_of(nodeid: str) -> str:
    """The work unit of a test, from its node ID (`tests/test_x.py::test_y[param]`)."""
    module = PurePosixPath(nodeid.split("::", 1)[0]).name
    if module in CLUSTER_FLEET:
        return "fleet"
    if module in SPREAD:
        return nodeid
    return module.removesuffix(".py")


def rank(nodeid: str) -> int:
    """Sort key for the collection: the longest units first, the rest in collection order."""
    unit = unit_of(nodeid)
    return LONGEST_FIRST.index(unit) if unit in LONGEST_FIRST else len(LONGEST_FIRST)


def module_scheduling(config, log):
    """xdist's scope scheduling with our units (xdist imported here: a serial run needs no xdist). A
    worker is given its next unit when at most one test of its own is still pending: xdist's default
    (two) leaves a long unit queued behind another long one while other workers sit idle. A worker
    holding one pending test waits for a next one (pytest runs a test knowing the next), so it always
    gets a unit or, with none left, its shutdown in the same call."""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def __init__(self, config, log=None) -> None:
            super().__init__(config, log)
            config.option.loadscopereorder = False  # keep our order (xdist's would put the most tests first)

        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

        def _reschedule(self, node) -> None:
            if node.shutting_down:
                return
            if not self.workqueue:
                node.shutdown()
                return
            if self._pending_of(self.assigned_work[node]) > 1:
                return
            self._assign_work_unit(node)

    return ModuleScheduling(config, log)
