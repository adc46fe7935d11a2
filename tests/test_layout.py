"""The layout holds: the control plane knows nothing of Kubernetes, the product never imports the dev
tools, nothing imports in a circle, every router is a TrafficRouter chosen in one place, and every
workflow carries only the decisions it supports — each as an update and a signal of the same name.
Imports are read from the source (ast), so a lazy or TYPE_CHECKING import counts too."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
from temporalio.workflow import _Definition

from workflows.registry import ALL_WORKFLOWS

REPO = Path(__file__).resolve().parent.parent
PRODUCT = ("models", "workflows", "activities", "workers", "starters")
DEV_TOOLS = "localcluster"
NOT_PRODUCT = (DEV_TOOLS, "tests", "bench")  # the dev tools (devtools/), the suite, the benchmarks
AGENT = "rollout_agent"  # the device side (rollout-agent/), a distribution of its own
ROOTS = {package: REPO for package in PRODUCT} | {DEV_TOOLS: REPO / "devtools", AGENT: REPO / "rollout-agent"}
# The strategy workflows name no delivery target: they reach one through workflows/targets/.
STRATEGIES = ("workflows.canary", "workflows.bluegreen", "workflows.rolling", "workflows.recreate", "workflows.abtest",
              "workflows.revision", "workflows.window")
TARGET_DETAIL = ("activities.targets", "models.kubernetes", "models.targets", "models.ecs", "kubernetes", "boto3", "botocore")
CONTROL_PLANE = ("workflows.context", "workflows.control", "workflows.decisions", "workflows.handlers",
                 "workflows.approval", "workflows.analysis", "workflows.webhooks", "workflows.notify",
                 "workflows.details", "workflows.continuation", "workflows.errors",
                 # a staged release and its channels: the same control plane, no Kubernetes
                 "workflows.release", "workflows.channels", "workflows.channels.updater", "workflows.channels.flag",
                 "workflows.refresh")
KUBERNETES = ("activities.targets.kubernetes", "models.kubernetes", "kubernetes")


def _module(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p, root): p for package, root in ROOTS.items() for p in (root / package).rglob("*.py")}


def imports(module: str, top_level_only: bool = False) -> set[str]:
    """The modules `module` imports (of this project or not), resolved to the longest known name."""
    tree = ast.parse(MODULES[module].read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    if top_level_only:  # module level, including `with ...:` and `if TYPE_CHECKING:` blocks, not functions
        nodes = [n for top in tree.body if not isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                 for n in ast.walk(top)]
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names if f"{node.module}.{alias.name}" in MODULES}
    return found


def reachable(start: str, top_level_only: bool = False) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for name in imports(todo.pop(), top_level_only):
            if name in MODULES and name not in seen:
                seen.add(name)
                todo.append(name)
            elif name not in MODULES:
                seen.add(name)
    return seen


def _is(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("module", CONTROL_PLANE)
def test_the_control_plane_imports_nothing_of_the_kubernetes_target(module):
    assert module in MODULES
    leaks = sorted(name for name in reachable(module) if _is(name, KUBERNETES))
    assert leaks == [], f"{module} reaches {leaks}"


@pytest.mark.parametrize("module", STRATEGIES + tuple(m for m in CONTROL_PLANE if not _is(m, ("workflows.channels",
                                                                                           "workflows.refresh"))))
def test_strategies_and_the_control_plane_name_no_delivery_target(module):
    """Not even lazily: a strategy asks its `DeliveryTarget` (workflows/targets/), which the spec's target picks."""
    named = sorted(name for name in imports(module) if _is(name, TARGET_DETAIL))
    assert named == [], f"{module} imports {named}"
    if module in STRATEGIES:
        assert "workflows.targets" in imports(module) or module in ("workflows.recreate", "workflows.abtest",
                                                                    "workflows.revision"), module
        assert ".kubernetes" not in MODULES[module].read_text(), f"{module} reads the spec's Kubernetes block"


def test_every_target_is_one_record():
    """Its model in models/targets.py names its family, capabilities, adapter, activities and observer; the
    worker, the names, ObserveTarget and the strategies read them from there."""
    from models.targets import Target
    from workers.main import activities_by_family
    from workflows.targets import ADAPTERS, DeliveryTarget

    served = activities_by_family(None)
    for kind, model in Target.models().items():
        protocol = {name for name in vars(DeliveryTarget) if not name.startswith("_")} - {"capabilities"}
        for adapter in getattr(ADAPTERS[kind], "ADAPTERS", (ADAPTERS[kind],)):  # one per Kubernetes workload
            refused = getattr(adapter, "REFUSED", frozenset())  # what its capabilities refuse at validation
            can = adapter.capabilities
            assert not refused or not (can.instant_switch or can.in_place_rolling or can.warm_rollback_window), adapter
            assert protocol <= set(dir(adapter)) | refused, f"{kind}: {sorted(protocol - set(dir(adapter)))}"
        names = {getattr(fn, "__temporal_activity_definition").name for fn in served[model.FAMILY]}
        assert model.OBSERVER in names, f"{kind}'s observer is not served on its family {model.FAMILY}"


def test_one_start_path():
    """Every start builds its ID and search attributes with `names.start_options` and names its workflow by
    class: only that helper builds search attributes (and the control plane, upserting a run's phase and step,
    and starting the rollback window, whose module it must not import), and no start names a workflow by a
    string."""
    builders = sorted(name for name, path in MODULES.items() if _is(name, PRODUCT)
                      if "SearchAttributePair(" in path.read_text())
    assert builders == ["models.names", "workflows.control"]
    calls = re.compile(r"(start_workflow|start_child_workflow|execute_child_workflow)\(\s*\"(\w+)\"")
    named = sorted({(name, m.group(2)) for name, path in MODULES.items() if _is(name, PRODUCT)
                    for m in calls.finditer(path.read_text())})
    assert named == [("workflows.control", "RollbackWindow")]


def test_the_product_never_imports_the_dev_tools():
    """Not even lazily, not even the CLI: `rollout dev|cluster|demo` come through the dev tools' entry point
    (starters/plugins.py). Nor the suite or the benchmarks."""
    offenders = [f"{module}: {sorted(found)}" for module in MODULES if _is(module, PRODUCT)
                 if (found := {n for n in imports(module) if _is(n, NOT_PRODUCT)})]
    assert offenders == []


def test_the_product_imports_only_what_it_declares():
    """Every third-party module the product imports (lazily too) comes from a distribution its pyproject
    lists under `dependencies` — the agent's cohort code included — so `pip install` gives a CLI that starts."""
    import tomllib
    from importlib.metadata import packages_distributions

    declared = {re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")
                for requirement in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]}
    providers = packages_distributions()
    undeclared = {}
    for module in MODULES:
        if _is(module, PRODUCT):
            for name in imports(module):
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in PRODUCT or top == "__future__":
                    continue
                dists = {d.lower().replace("_", "-") for d in providers.get(top, [top])}
                if not dists & declared:
                    undeclared.setdefault(top, set()).add(module)
    assert undeclared == {}


def test_no_import_cycles():
    """Between packages (module-level imports) and between any two modules (TYPE_CHECKING included)."""
    cycles = [m for m in MODULES if m in reachable(m, top_level_only=True)]
    assert cycles == []
    package = lambda name: name.split(".")[0]  # noqa: E731
    edges = {(package(m), package(n)) for m in MODULES for n in imports(m, top_level_only=True)
             if n in MODULES and package(m) != package(n)}
    for a, b in edges:
        assert (b, a) not in edges, f"packages {a} and {b} import each other"


def test_every_router_is_a_traffic_router_chosen_in_one_place():
    from activities.targets.kubernetes.routing import router_for
    from models.routing import ROUTERS, TrafficRouting

    routing = REPO / "activities" / "targets" / "kubernetes" / "routing"
    modules = {p.stem for p in routing.glob("*.py")} - {"__init__", "custom"}
    assert modules == {"replicas", "istio", "nginx", "gateway"}
    for name in ROUTERS:
        blocks = {"replicas": {}, "istio": {"virtualService": {"name": "web"}}, "nginx": {"stableIngress": "web"},
                  "gatewayAPI": {"httpRoute": "web"}}
        from activities.targets.kubernetes.routing import Routes
        from models.targets import KubernetesTarget

        routes = Routes(KubernetesTarget(namespace="shop", deployment="web"),
                        TrafficRouting.model_validate({name: blocks[name]}), "web", "web-canary")
        router = router_for(_NoClients(), routes)
        for verb in ("sizes", "prepare", "apply", "remove"):
            assert callable(getattr(router, verb)), f"{name} router lacks {verb}"
        assert isinstance(router.owns_weights, bool) and isinstance(router.pins_stable_service, bool)
    for path in [*(REPO / "workflows").glob("*.py"), *(REPO / "activities").rglob("*.py")]:
        text = path.read_text()
        assert 'router == "' not in text and 'router != "' not in text, f"{path} names a router"


class _NoClients:
    def api(self, context):
        from kubernetes import client

        return client.ApiClient()


def test_each_workflow_carries_only_its_decisions_through_both_doors():
    carried = {}
    for cls in ALL_WORKFLOWS:
        definition = _Definition.from_class(cls)
        updates, signals = set(definition.updates), set(definition.signals)
        assert updates - {"undo"} == signals, f"{definition.name}: every decision is an update and a signal"
        carried[definition.name] = signals
    decisions = {"approve", "reject", "promote", "abort", "pause", "resume", "skipAnalysis", "setWeight"}
    assert carried["CanaryRollout"] == carried["ABTestRollout"] == decisions
    assert carried["BlueGreenRollout"] == carried["RollingUpdateRollout"] == decisions - {"setWeight"}
    assert carried["AnalysisRun"] == {"abort", "skipAnalysis"}
    assert carried["RollbackWindow"] == {"abort", "promote"}
    assert carried["ObserveTarget"] == set()
    assert carried["StagedRelease"] == {"abort", "promote", "approve", "reject", "halt", "resume", "rollback",
                                        "skipAnalysis"}
    assert carried["RefreshMetadata"] == set()


def test_every_release_channel_is_one_model_and_one_workflow_module():
    """A new channel: one block of `spec.channel` (models/release.py) and one entry in workflows/channels."""
    from models.release import CHANNELS, Channel
    from workflows.channels import CHANNELS as RELEASE_CHANNELS

    assert tuple(RELEASE_CHANNELS) == CHANNELS == Channel.CHOICES
    for kind, implementation in RELEASE_CHANNELS.items():
        assert implementation.__module__ == f"workflows.channels.{re.sub(r'(?<!^)(?=[A-Z])', '_', kind).lower()}"
        for method in ("prepare", "expose", "roll_back", "stop", "rolled_back_share"):
            assert callable(getattr(implementation, method))
        assert isinstance(implementation.unit, str) and isinstance(implementation.source, str)
        block = Channel.model_fields[next(n for n, f in Channel.model_fields.items() if (f.alias or n) == kind)]
        model = block.annotation.__args__[0]  # `X | None`
        for method in ("artifact_fields", "check", "describe"):
            assert callable(getattr(model, method)), f"{model.__name__}.{method}"


def test_the_device_side_installs_no_temporal_and_no_kubernetes():
    """rollout-agent is its own distribution: python-tuf, securesystemslib, packaging, the standard library."""
    agent = REPO / "rollout-agent"
    allowed = {"tuf", "securesystemslib", "packaging", "urllib3", "rollout_agent"}
    found = set()
    for path in (agent / "rollout_agent").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    third_party = {name for name in found if name not in sys.stdlib_module_names} - {"__future__"}
    assert third_party <= allowed, third_party - allowed
    declared = (agent / "pyproject.toml").read_text()
    for name in ("tuf", "securesystemslib[crypto]", "packaging"):
        assert f'"{name}' in declared
    assert "temporalio" not in declared and "kubernetes" not in declared


def test_decision_handlers_are_written_out():
    """`grep "def approve"` finds the handler."""
    text = (REPO / "workflows" / "handlers.py").read_text()
    for handler in ("def approve(", "def reject(", "def promote(", "def abort(", "def pause(", "def resume(",
                    "def skip_analysis(", "def set_weight("):
        assert handler in text
