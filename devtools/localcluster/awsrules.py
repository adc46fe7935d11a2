"""What the AWS stand-in refuses before moto sees a request (localcluster/awsstandin.py says why): each
rule from the ECS and ELBv2 API references, or stricter where marked. `problem_with(call)` answers
(error code, message) or None."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

ACCOUNT = "123456789012"  # moto's default account
OBSERVER_KEY = "STANDINOBSERVER"  # the access key of the stand-in's own reads, which the call log leaves out


@dataclass
class Call:
    """One request to the stand-in, as its call log keeps it."""

    service: str  # ecs, elasticloadbalancing, monitoring
    region: str
    action: str
    params: dict[str, Any] = field(default_factory=dict)
    protocol: str = ""  # json (ECS, CloudWatch: awsJson, which botocore chooses), or ELBv2's query form
    at: float = field(default_factory=time.monotonic)  # when it arrived (before moto answered)


# UpdateService on an EXTERNAL service: what the ECS reference allows (everything else needs a task set).
_EXTERNAL_UPDATE = {"cluster", "service", "desiredCount", "placementConstraints", "placementStrategy",
                    "healthCheckGracePeriodSeconds", "enableECSManagedTags", "propagateTags"}
_FORWARDING = {"CreateListener": "DefaultActions", "ModifyListener": "DefaultActions", "CreateRule": "Actions",
               "ModifyRule": "Actions"}


def problem_with(call: Call) -> tuple[str, str] | None:
    if call.service == "ecs":
        return _ecs(call)
    if call.service == "elasticloadbalancing" and call.action in _FORWARDING:
        return _elb(call)
    if call.service == "monitoring" and call.action == "GetMetricData":
        return _metric_data(call)
    return None


_STATS = {"Sum", "Average", "Minimum", "Maximum", "SampleCount"}


def _metric_data(call: Call) -> tuple[str, str] | None:
    """Stricter than CloudWatch where moto would answer wrong: percentiles crash it (a 500); metric math it
    answers empty and "Complete" (which a gate must never read as "no errors"): arithmetic is evaluated by
    the stand-in (localcluster/metricmath.py), anything else refused."""
    queries = call.params.get("MetricDataQueries") or []
    ids = {q.get("Id") for q in queries}
    for query in queries:
        stat = (query.get("MetricStat") or {}).get("Stat")
        if stat is not None and stat not in _STATS:
            return "InvalidParameterValue", f"stand-in: moto computes only {', '.join(sorted(_STATS))}, not {stat}"
        expression = query.get("Expression")
        if expression is not None:
            from localcluster.metricmath import unknown_in

            problem = unknown_in(expression, ids - {query.get("Id")})
            if problem:
                return "InvalidParameterValue", f"stand-in: metric math {expression!r}: {problem}"
    return None


def _ecs_backend(region: str) -> Any:
    from moto.ecs.models import ecs_backends

    return ecs_backends[ACCOUNT][region]


def _service(call: Call) -> Any:
    p = call.params
    cluster = str(p.get("cluster", "default")).rsplit("/", 1)[-1]
    return _ecs_backend(call.region).services.get(f"{cluster}:{str(p.get('service', '')).rsplit('/', 1)[-1]}")


def _ecs(call: Call) -> tuple[str, str] | None:
    p, action = call.params, call.action
    if action in ("CreateTaskSet", "UpdateTaskSet", "DeleteTaskSet", "UpdateServicePrimaryTaskSet"):
        service = _service(call)
        if service is None:
            return "ServiceNotFoundException", "Service not found."
        if service.deployment_controller.get("type") != "EXTERNAL":
            return "InvalidParameterException", "Task sets need a service with the EXTERNAL deployment controller."
        if action == "CreateTaskSet":
            return _create_task_set(call, service)
        named = p.get("taskSet") or p.get("primaryTaskSet") or ""
        if action == "UpdateServicePrimaryTaskSet" and not named.startswith("arn:"):
            return "InvalidParameterException", "stand-in: primaryTaskSet must be the task set's ARN (moto ignores IDs)"
        task_set = next((ts for ts in service.task_sets if named in (ts.task_set_arn, ts.id)), None)
        if task_set is None:
            return "TaskSetNotFoundException", "The specified task set does not exist."
        if action == "UpdateTaskSet":
            return _scale(p.get("scale"))
        if action == "DeleteTaskSet" and not p.get("force") and float(task_set.scale.get("value", 0)) > 0:
            return "InvalidParameterException", "The task set is not scaled to zero: delete it with force."
    if call.action == "UpdateService":
        service = _service(call)
        if service is not None and service.deployment_controller.get("type") == "EXTERNAL":
            extra = sorted(set(p) - _EXTERNAL_UPDATE)
            if extra:
                return "InvalidParameterException", f"{extra[0]} cannot be updated on a service with an EXTERNAL controller."
    return None


def _scale(scale: Any) -> tuple[str, str] | None:
    if not isinstance(scale, dict) or scale.get("unit") != "PERCENT" or not 0 <= float(scale.get("value", -1)) <= 100:
        return "InvalidParameterException", "scale: a value between 0 and 100 with unit PERCENT."
    return None


def _create_task_set(call: Call, service: Any) -> tuple[str, str] | None:
    from moto.elbv2.models import elbv2_backends

    p = call.params
    if _scale(p.get("scale")) or "scale" not in p:
        return "InvalidParameterException", "stand-in: scale is required (moto launches nothing without it) and 0-100 PERCENT."
    if p.get("launchType") and p.get("capacityProviderStrategy"):
        return "InvalidParameterException", "launchType and capacityProviderStrategy cannot both be given."
    token = p.get("clientToken", "")
    if len(token) > 36 or any(not 33 <= ord(c) <= 126 for c in token):
        return "InvalidParameterException", "clientToken: at most 36 printable ASCII characters."
    try:
        definition = _ecs_backend(call.region).describe_task_definition(p.get("taskDefinition", ""))
    except Exception:
        return "ClientException", "Unable to describe task definition."
    balancers = p.get("loadBalancers") or []
    if len(balancers) > 1:
        return "InvalidParameterException", "Multiple target groups are not supported for external deployments."
    for lb in balancers:
        group = elbv2_backends[ACCOUNT][call.region].target_groups.get(lb.get("targetGroupArn", ""))
        if group is None:
            return "InvalidParameterException", "The target group does not exist."
        if definition.network_mode == "awsvpc" and group.target_type != "ip":
            return "InvalidParameterException", "With awsvpc the target group's target type must be ip."
        ports = [m.get("containerPort") for c in definition.container_definitions if c.get("name") == lb.get("containerName")
                 for m in c.get("portMappings") or []]
        if lb.get("containerPort") not in ports:
            return "InvalidParameterException", "The container name and port must match the task definition."
    vpc = (p.get("networkConfiguration") or {}).get("awsvpcConfiguration") or {}
    if definition.network_mode == "awsvpc" and not vpc.get("securityGroups"):
        return "InvalidParameterException", "stand-in: name the security groups (moto fails without them)."
    return None


def _elb(call: Call) -> tuple[str, str] | None:
    from moto.elbv2.models import elbv2_backends

    groups = elbv2_backends[ACCOUNT][call.region].target_groups
    p = call.params
    for action in p.get(_FORWARDING[call.action]) or []:
        if action.get("Type") != "forward":
            continue
        forward = (action.get("ForwardConfig") or {}).get("TargetGroups") or []
        if action.get("TargetGroupArn") and forward and [g.get("TargetGroupArn") for g in forward] != [action["TargetGroupArn"]]:
            return "ValidationError", "With TargetGroupArn, ForwardConfig may name only that target group."
        if not 1 <= len(forward or [action.get("TargetGroupArn")]) <= 5:
            return "ValidationError", "A forward action names 1 to 5 target groups."
        for group in forward or [{"TargetGroupArn": action.get("TargetGroupArn")}]:
            if group.get("TargetGroupArn") not in groups:
                return "TargetGroupNotFound", "One or more target groups not found"
            if not 0 <= int(group.get("Weight", 1)) <= 999:
                return "ValidationError", "A target group's weight is 0 to 999."
    if "Priority" in p and not 1 <= int(p["Priority"]) <= 50000:
        return "ValidationError", "Priority: 1 to 50000."
    conditions = p.get("Conditions") or []
    values = 0
    for condition in conditions:
        header = condition.get("HttpHeaderConfig") or {}
        if header and (len(header.get("HttpHeaderName", "")) > 40 or any(len(v) > 128 for v in header.get("Values", []))):
            return "ValidationError", "An http-header condition: a name up to 40, values up to 128 characters."
        for config in [v for k, v in condition.items() if k.endswith("Config")] or [condition]:
            values += len(config.get("Values") or [])
    if values > 5:
        return "TooManyConditionValues", "A rule has at most 5 condition values."
    return None
