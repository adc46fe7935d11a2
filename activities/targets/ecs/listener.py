"""The ALB side of the ECS target, from the ELBv2 API reference: a listener's default actions (or a rule's
actions) are replaced as a whole by ModifyListener (ModifyRule), so every other action is read and sent
back unchanged and only the forward action's weights are set; a forward action's ForwardConfig lists
target groups with weights 0-999 (here: percentages). Header routes are rules of the listener — an
`http-header` condition (a prefix is the value followed by `*`; ALB compares values case-insensitively)
ANDed with the weighted rule's own conditions, forwarding to the candidate's target group, at the lowest
precedence that still comes before the weighted rule, so the listener's other rules keep theirs. Our rules
carry a tag naming the rollout and the route."""

from __future__ import annotations

import copy
from typing import Any

from activities.aws import aws_errors, invalid
from models.ecs import EcsTarget
from models.routing import SetHeaderRoute

ROUTE_TAG = "durable-rollouts.dev/route"
MAX_PRIORITY = 50000


def _weighted(elbv2: Any, t: EcsTarget) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The actions traffic is weighted on (the rule's, or the listener's default), and the rule."""
    lb = t.load_balancer
    with aws_errors(f"listener {lb.rule or lb.listener}"):
        if lb.rule:
            rule = elbv2.describe_rules(RuleArns=[lb.rule])["Rules"][0]
            return rule["Actions"], rule
        return elbv2.describe_listeners(ListenerArns=[lb.listener])["Listeners"][0]["DefaultActions"], None


def _forward(actions: list[dict[str, Any]], t: EcsTarget) -> dict[str, Any]:
    forwards = [a for a in actions if a.get("Type") == "forward"]
    if len(forwards) != 1:
        raise invalid(f"listener {t.load_balancer.rule or t.load_balancer.listener}: needs one forward action, "
                      f"has {len(forwards)}")
    return forwards[0]


def check_groups(elbv2: Any, t: EcsTarget, candidate_group: str, ours: list[dict[str, Any]]) -> None:
    """Before a candidate goes behind `candidate_group`: both target groups serve only this listener's load
    balancer (an ALB target group serves one), and the candidate's has no targets that none of this
    service's own task sets (`ours`: leftovers being removed) registered — else a document could put its
    tasks into another service's production target group."""
    lb = t.load_balancer
    with aws_errors(f"listener {lb.listener}"):
        balancer = elbv2.describe_listeners(ListenerArns=[lb.listener])["Listeners"][0]["LoadBalancerArn"]
        groups = elbv2.describe_target_groups(TargetGroupArns=list(lb.target_groups))["TargetGroups"]
        registered = [h for h in elbv2.describe_target_health(TargetGroupArn=candidate_group)["TargetHealthDescriptions"]
                      if h["TargetHealth"]["State"] not in ("draining", "unused")]  # leaving after an earlier run
    for group in groups:
        others = set(group.get("LoadBalancerArns") or []) - {balancer}
        if others:
            raise invalid(f"target group {group['TargetGroupName']} also serves load balancer "
                          f"{sorted(others)[0].rsplit(':', 1)[-1]}: not this listener's alone")
    behind = any((ts.get("loadBalancers") or [{}])[0].get("targetGroupArn") == candidate_group for ts in ours)
    if registered and not behind:
        raise invalid(f"target group {candidate_group.rsplit(':', 1)[-1]} has {len(registered)} targets that no task "
                      "set of this service registered: it serves something else")


def weights(elbv2: Any, t: EcsTarget) -> dict[str, int]:
    """Target group -> weight of the weighted forward action, as the ALB has it now."""
    return _weights_of(_forward(_weighted(elbv2, t)[0], t), t)


def _weights_of(forward: dict[str, Any], t: EcsTarget) -> dict[str, int]:
    groups = (forward.get("ForwardConfig") or {}).get("TargetGroups") or [
        {"TargetGroupArn": forward["TargetGroupArn"], "Weight": 1}]
    found = {g["TargetGroupArn"]: int(g.get("Weight", 1)) for g in groups}
    strangers = set(found) - set(t.load_balancer.target_groups)
    if strangers:
        raise invalid(f"listener {t.load_balancer.rule or t.load_balancer.listener}: forwards to "
                      f"{sorted(strangers)[0]}, not one of target.ecs.loadBalancer.targetGroups")
    return found


def live_target_group(elbv2: Any, t: EcsTarget) -> str | None:
    """The target group production traffic goes to: the only one with weight (None: split or none)."""
    live = [arn for arn, weight in weights(elbv2, t).items() if weight > 0]
    return live[0] if len(live) == 1 else None


def set_weights(elbv2: Any, t: EcsTarget, wanted: dict[str, int]) -> bool:
    """Set the forward action's weights to `wanted` (both target groups named); whether anything changed."""
    actions, rule = _weighted(elbv2, t)
    current = _weights_of(_forward(actions, t), t)
    if {arn: current.get(arn, 0) for arn in wanted} == wanted and set(current) <= set(wanted):
        return False
    actions = copy.deepcopy(actions)
    for action in actions:  # sent back as read; an OIDC action's secret is not read back: keep the stored one
        if action.get("Type") == "authenticate-oidc":
            action.setdefault("AuthenticateOidcConfig", {})["UseExistingClientSecret"] = True
    forward = _forward(actions, t)
    stickiness = (forward.get("ForwardConfig") or {}).get("TargetGroupStickinessConfig") or {"Enabled": False}
    forward.pop("TargetGroupArn", None)
    forward["ForwardConfig"] = {"TargetGroups": [{"TargetGroupArn": arn, "Weight": weight} for arn, weight in wanted.items()],
                                "TargetGroupStickinessConfig": stickiness}
    lb = t.load_balancer
    with aws_errors(f"listener {lb.rule or lb.listener}"):
        if rule is not None:
            elbv2.modify_rule(RuleArn=rule["RuleArn"], Actions=actions)
        else:
            elbv2.modify_listener(ListenerArn=lb.listener, DefaultActions=actions)
    return True


def _rules(elbv2: Any, t: EcsTarget) -> list[dict[str, Any]]:
    with aws_errors(f"listener {t.load_balancer.listener}"):
        pages = elbv2.get_paginator("describe_rules").paginate(ListenerArn=t.load_balancer.listener)
        return [rule for page in pages for rule in page["Rules"]]


def _ours(elbv2: Any, rules: list[dict[str, Any]], rollout_id: str) -> dict[str, dict[str, Any]]:
    """Our header rules by route name (their tag: "<rollout>/<route>")."""
    arns = [r["RuleArn"] for r in rules if not r.get("IsDefault")]
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(arns), 20):  # DescribeTags takes at most 20 ARNs
        with aws_errors("listener rules' tags"):
            described = elbv2.describe_tags(ResourceArns=arns[start:start + 20])["TagDescriptions"]
        for item in described:
            tag = next((x["Value"] for x in item.get("Tags", []) if x["Key"] == ROUTE_TAG), "")
            if tag.startswith(f"{rollout_id}/"):
                found[tag.removeprefix(f"{rollout_id}/")] = next(r for r in rules if r["RuleArn"] == item["ResourceArn"])
    return found


def _conditions(route: SetHeaderRoute, base: list[dict[str, Any]]) -> list[dict[str, Any]]:
    own = [{"Field": c["Field"], **{k: v for k, v in c.items() if k.endswith("Config")}} for c in base]
    for match in route.match or []:
        value = match.header_value
        pattern = value.value + ("*" if value.kind == "prefix" else "")
        own.append({"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": match.header_name, "Values": [pattern]}})
    return own


def _actions(weighted: list[dict[str, Any]], target_group: str) -> list[dict[str, Any]]:
    """A header rule's actions: the weighted action list's authentication first (a header must not skip a
    login the weighted path asks for; an OIDC secret is not read back: the stored one kept), then a
    forward to the candidate's target group."""
    found = []
    for action in weighted:
        if str(action.get("Type", "")).startswith("authenticate-"):
            action = copy.deepcopy(action)
            if action["Type"] == "authenticate-oidc":
                action.setdefault("AuthenticateOidcConfig", {})["UseExistingClientSecret"] = True
            found.append(action)
    order = max([int(a.get("Order", 0)) for a in found] + [0]) + 1
    return found + [{"Type": "forward", "Order": order,
                     "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": target_group, "Weight": 1}]}}]


def _same(rule: dict[str, Any], conditions: list[dict[str, Any]], target_group: str, kinds: list[str]) -> bool:
    """Whether our rule already has these conditions, forwards to `target_group` and authenticates as `kinds`."""
    if [a.get("Type") for a in rule.get("Actions", []) if a.get("Type") != "forward"] != kinds:
        return False
    have = [{"Field": c["Field"], **{k: v for k, v in c.items() if k.endswith("Config")}} for c in rule.get("Conditions", [])]
    groups = [(g["TargetGroupArn"], g.get("Weight")) for a in rule.get("Actions", []) if a.get("Type") == "forward"
              for g in (a.get("ForwardConfig") or {}).get("TargetGroups", [])]
    key = lambda c: repr(sorted(c.items()))  # noqa: E731
    return sorted(have, key=key) == sorted(conditions, key=key) and [g for g, _ in groups] == [target_group]


def set_header_rules(elbv2: Any, t: EcsTarget, rollout_id: str, routes: list[SetHeaderRoute], target_group: str) -> bool:
    """Make our header rules exactly `routes` (each forwarding to `target_group`); whether anything changed."""
    rules = _rules(elbv2, t)
    ours = _ours(elbv2, rules, rollout_id)
    weighted = next((r for r in rules if r["RuleArn"] == t.load_balancer.rule), None)
    base = weighted.get("Conditions", []) if weighted else []
    ceiling = int(weighted["Priority"]) if weighted else MAX_PRIORITY + 1
    # the weighted actions from the rules just read: the rule's, or the default rule's (the listener's own)
    path = weighted or next((r for r in rules if r.get("IsDefault")), {})
    actions = _actions(path.get("Actions", []), target_group) if routes else []
    kinds = [a["Type"] for a in actions[:-1]]
    changed = False
    wanted = {route.name: route for route in routes}
    for name, rule in ours.items():
        if name not in wanted or not _same(rule, _conditions(wanted[name], base), target_group, kinds):
            with aws_errors(f"listener rule {rule['RuleArn']}"):
                elbv2.delete_rule(RuleArn=rule["RuleArn"])
            rules.remove(rule)
            changed = True
        else:
            wanted.pop(name)
    taken = {int(r["Priority"]) for r in rules if not r.get("IsDefault")}
    for name, route in wanted.items():
        free = next((p for p in range(ceiling - 1, 0, -1) if p not in taken), None)
        if free is None:
            raise invalid(f"listener {t.load_balancer.listener}: no free rule priority below {ceiling}")
        with aws_errors(f"listener {t.load_balancer.listener}"):
            elbv2.create_rule(ListenerArn=t.load_balancer.listener, Priority=free, Conditions=_conditions(route, base),
                              Actions=actions,
                              Tags=[{"Key": ROUTE_TAG, "Value": f"{rollout_id}/{name}"}])
        taken.add(free)
        changed = True
    return changed
