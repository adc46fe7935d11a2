"""What the chosen delivery target can do, checked against the whole spec: a strategy or a step the target
(or, on Kubernetes, the spec's router) cannot do is refused at validation, naming the field — never found
out half-way through a rollout. The target declares its `Capabilities` and, where it routes traffic
itself, its `ROUTER` (an ECS target's ALB); its own `strategy_problem` names the fields it needs or has no
use for (a Kubernetes target's Services)."""

from __future__ import annotations

from typing import Any

from models.routing import HEADER_ROUTERS, Router
from models.strategies import CanaryStrategy

RolloutSpecBody = Any  # models/spec.py's, which calls this module (a name here, not an import: no cycle)


def target_problem(spec: RolloutSpecBody) -> str:
    """Why the chosen target cannot run this spec ("" when it can): "@field.path: what is wrong"."""
    kind, target, st = spec.target.kind, spec.target.chosen, spec.strategy
    can, name = getattr(target, "capabilities", target.CAPABILITIES), st.name  # a Kubernetes workload's own
    own = target.strategy_problem(st) or (target.spec_problem(spec) if hasattr(target, "spec_problem") else "")
    if own:
        return own
    for path, step in spec.analysis_steps():
        for index, arg in enumerate(step.args):
            if arg.value_from is not None and not target.VALUE_FROM:
                return f"@{path}.args[{index}].valueFrom: the {kind} target names no sides for analyses"
            if arg.value_from is not None and arg.value_from.kind != target.VALUE_FROM:
                return (f"@{path}.args[{index}].valueFrom.{arg.value_from.kind}: the {kind} target names its sides "
                        f"with valueFrom.{target.VALUE_FROM}")
    if name in ("rollingUpdate", "recreate") and not can.in_place_rolling:
        return f"@strategy.{name}: the {kind} target has no in-place update here (use canary or blueGreen)"
    if name == "blueGreen" and not can.instant_switch:
        return f"@strategy.blueGreen: the {kind} target cannot switch traffic in one call"
    if spec.rollback_window is not None and not can.warm_rollback_window:
        return f"@rollbackWindow: the {kind} target keeps no earlier revision warm"
    window_limit = getattr(target, "WARM_REVISIONS", None)
    if spec.rollback_window is not None and window_limit is not None and spec.rollback_window.revisions > window_limit:
        return f"@rollbackWindow.revisions: the {kind} target keeps at most {window_limit} revision warm"
    if spec.rollback_window is not None and spec.rollback_window.service and kind != "kubernetes":
        return f"@rollbackWindow.service: a Kubernetes field; the {kind} target switches its own traffic"
    if name == "blueGreen":
        bg = st.blue_green
        router, router_name = _router(spec, bg.traffic_routing)
        if bg.gradual_shift and (router is None or not router.owns_weights or not can.weights):
            return ("@strategy.blueGreen.trafficRouting: gradualShift needs a router with weights of its own "
                    "(istio, nginx, gatewayAPI)" if kind == "kubernetes" else
                    f"@strategy.blueGreen.gradualShift: the {kind} target sets no weights")
        return ""
    if name == "abTest":
        router, router_name = _router(spec, st.ab_test.traffic_routing)
        if not can.header_routes or router is None or not router.routes_by_header:
            return (f"@strategy.abTest.trafficRouting: an A/B test needs a router that routes by header "
                    f"({', '.join(HEADER_ROUTERS)}), not {router_name}")
        problem = _steps_problem(st.ab_test.as_canary(), router, router_name)
        return "@strategy.abTest.audience: " + problem.split(": ", 1)[-1] if problem else ""
    if name == "canary":
        router, router_name = _router(spec, st.canary.traffic_routing)
        if st.canary.dynamic_stable_scale and (router is None or not router.owns_weights):
            return f"@strategy.canary.dynamicStableScale: the {router_name} router already scales stable with the weight"
        problem = _steps_problem(st.canary, router, router_name)
        return f"@strategy.canary.{problem}" if problem else ""
    return ""


def _router(spec: RolloutSpecBody, routing) -> tuple[Router | None, str]:
    """The router a strategy's steps go through: the target's own (an ALB), or the spec's on Kubernetes."""
    own = getattr(spec.target.chosen, "ROUTER", None)
    if own is not None:
        return own, f"{spec.target.kind} load balancer"
    if routing is None:
        return None, "none"
    return routing.chosen, routing.router


def _steps_problem(canary: CanaryStrategy, router: Router | None, router_name: str) -> str:
    """The first step the router cannot do, as "steps[i].kind…: problem"."""
    if router is None:
        return ""
    for index, step in enumerate(canary.steps):
        problem = router.step_problem(router_name, step.kind, step)
        if problem.startswith("@"):  # about a field inside the step
            return f"steps[{index}].{step.kind}.{problem[1:]}"
        if problem:
            return f"steps[{index}].{step.kind}: {problem}"
    return ""
