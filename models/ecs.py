"""`spec.target.ecs`: an Amazon ECS service with the EXTERNAL deployment controller, behind an Application
Load Balancer — the target's block of the spec, and the inputs of its activities (activities/targets/ecs/).

Each revision runs as a task set; the ALB listener's (or one listener rule's) weighted forward action
splits production traffic between two target groups, one per side, which alternate from rollout to
rollout (the one the listener sends traffic to is the stable side). Names follow the ECS and ELBv2 API
references: cluster and service names are up to 255 letters, digits, hyphens and underscores; ARNs are
checked for their service, their region (the target's) and their resource type, so a document cannot
point one region's rollout at another's load balancer. Which endpoint and which credentials the worker
uses are its own configuration (boto3's default chain): a document never chooses them."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

from models.delivery import Capabilities
from models.routing import Router, RouteState, SetCanaryScale, SetHeaderRoute
from models.specbase import Message, SpecModel

EcsName = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_-]+$")]
Region = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$")]
_ARN = re.compile(r"^arn:aws[a-z-]*:elasticloadbalancing:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):"
                  r"(?P<kind>listener|listener-rule|targetgroup)/[A-Za-z0-9/_.-]{1,400}$")
ElbArn = Annotated[str, StringConstraints(max_length=500)]
Subnet = Annotated[str, StringConstraints(pattern=r"^subnet-[0-9a-f]{8,17}$")]
SecurityGroup = Annotated[str, StringConstraints(pattern=r"^sg-[0-9a-f]{8,17}$")]

# An ALB http-header condition: the name up to 40 characters, each value up to 128 (the ELBv2 reference).
ALB_HEADER_NAME, ALB_HEADER_VALUE, ALB_CONDITION_VALUES = 40, 128, 5


class EcsLoadBalancer(SpecModel):
    """Where production (and preview) traffic enters: an ALB listener, or one of its rules, forwarding to
    two target groups (type `ip`, one port) — the stable side and the candidate side."""

    listener: ElbArn = Field(description="the production listener's ARN")
    rule: ElbArn | None = Field(None, description="a rule of that listener to weight instead of its default action")
    test_listener: ElbArn | None = Field(None, description="blue-green: the listener the preview is tested on")
    target_groups: list[ElbArn] = Field(min_length=2, max_length=2, description="the two sides' target groups")
    container_port: int = Field(ge=1, le=65535, description="the container port the target groups send to")

    def arns(self) -> dict[str, tuple[str, str]]:
        """Each ARN field with the resource type it must name."""
        found = {"listener": (self.listener, "listener"), "rule": (self.rule, "listener-rule"),
                 "testListener": (self.test_listener, "listener")}
        found |= {f"targetGroups[{i}]": (arn, "targetgroup") for i, arn in enumerate(self.target_groups)}
        return {field: value for field, value in found.items() if value[0] is not None}


class EcsNetwork(SpecModel):
    """awsvpc networking of the task sets (Fargate requires it)."""

    subnets: list[Subnet] = Field(min_length=1, max_length=16)
    security_groups: list[SecurityGroup] = Field(min_length=1, max_length=5)
    assign_public_ip: bool = False


class AlbRouting(Router):
    """The ALB as a canary's router: weights of a forward action (0-999 per target group; percentages here),
    header routes as listener rules with http-header conditions; no mirroring (an ALB cannot copy requests)."""

    mirrors: ClassVar[bool] = False

    def header_route_problem(self, route: SetHeaderRoute) -> str:
        if len(route.match or []) > ALB_CONDITION_VALUES:
            return f"@match: an ALB rule has at most {ALB_CONDITION_VALUES} condition values"
        for index, match in enumerate(route.match or []):
            if (match.header_name or "").lower() == "host":
                return f"@match[{index}].headerName: an ALB matches the host with a host-header condition, not this"
            if match.cookie_name is not None:
                return f"@match[{index}].cookieName: an ALB rule matches headers, not cookies"
            if len(match.header_name or "") > ALB_HEADER_NAME:
                return f"@match[{index}].headerName: an ALB header condition names at most {ALB_HEADER_NAME} characters"
            value = match.header_value
            if value is not None and value.kind == "regex":
                return f"@match[{index}].headerValue.regex: an ALB matches exact values and prefixes, not regexes"
            if value is not None and (len(value.value) > ALB_HEADER_VALUE - 1 or re.search(r"[*?]", value.value)):
                return (f"@match[{index}].headerValue: at most {ALB_HEADER_VALUE - 1} characters, without * or ? "
                        "(an ALB reads them as wildcards)")
        return ""


class EcsTarget(SpecModel):
    """`spec.target.ecs`: an ECS service (deployment controller EXTERNAL) whose revisions are task sets."""

    FAMILY: ClassVar[str] = "aws"
    CAPABILITIES: ClassVar[Capabilities] = Capabilities(
        weights=True, header_routes=True, mirrors=False, instant_switch=True, warm_rollback_window=True,
        in_place_rolling=True)
    DELIVERY: ClassVar[str] = "workflows.targets.ecs:EcsDelivery"
    ACTIVITIES: ClassVar[str] = "activities.targets.ecs:activities"
    OBSERVER: ClassVar[str] = "observe_ecs_target"
    INSTANCES: ClassVar[str] = "tasks"
    VALUE_FROM: ClassVar[str] = "targetGroupValue"  # what an analysis arg's valueFrom reads (models/capabilities.py)
    ROUTER: ClassVar[Router] = AlbRouting()
    WARM_REVISIONS: ClassVar[int] = 1  # the rollback window's warm copy sits behind the one spare target group

    region: Region
    cluster: EcsName
    service: EcsName
    container: EcsName = Field(description="the container whose image a rollout sets")
    load_balancer: EcsLoadBalancer
    network: EcsNetwork
    launch_type: Literal["FARGATE", "EC2"] = "FARGATE"

    @model_validator(mode="after")
    def _arns(self) -> EcsTarget:
        for field, (arn, kind) in self.load_balancer.arns().items():
            match = _ARN.match(arn)
            if not match or match["kind"] != kind:
                raise ValueError(f"@loadBalancer.{field}: not an ELBv2 {kind} ARN")
            if match["region"] != self.region:
                raise ValueError(f"@loadBalancer.{field}: in region {match['region']}, the target is in {self.region}")
        lb = self.load_balancer
        accounts = {_ARN.match(arn)["account"] for arn, _ in lb.arns().values()}
        if len(accounts) > 1:
            raise ValueError("@loadBalancer: every ARN is of one account (the worker's)")
        listener = lb.listener.split(":listener/", 1)[-1]
        if lb.test_listener and lb.test_listener.split(":listener/", 1)[-1].rsplit("/", 1)[0] != listener.rsplit("/", 1)[0]:
            raise ValueError("@loadBalancer.testListener: a listener of the production listener's load balancer")
        if lb.rule is not None and not lb.rule.split(":listener-rule/", 1)[-1].startswith(listener + "/"):
            raise ValueError("@loadBalancer.rule: not a rule of loadBalancer.listener")
        if lb.target_groups[0] == lb.target_groups[1]:
            raise ValueError("@loadBalancer.targetGroups[1]: the two sides need two target groups")
        if lb.test_listener == lb.listener:
            raise ValueError("@loadBalancer.testListener: must be another listener than the production one")
        return self

    def describe(self) -> str:
        return f"ecs {self.region}/{self.cluster}/{self.service}"

    def strategy_problem(self, strategy: Any) -> str:
        """Kubernetes' fields have no meaning here: refused rather than ignored (models/capabilities.py); a
        blue-green's preview needs the test listener."""
        if strategy.name == "blueGreen" and self.load_balancer.test_listener is None:
            return "@target.ecs.loadBalancer.testListener: a blue-green's preview is tested on it: required"
        block = strategy.chosen_value
        for field in ("stable_service", "canary_service", "active_service", "preview_service", "traffic_routing",
                      "dynamic_stable_scale"):
            value = getattr(block, field, None)
            if value and not (field == "traffic_routing" and value.router == "replicas"):  # replicas: the default
                name = to_camel(field)
                return (f"@strategy.{strategy.name}.{name}: an ECS target routes through its load balancer "
                        "(target.ecs.loadBalancer); remove it")
        return ""


# ---- the activities' inputs ---------------------------------------------------------------------------


class EcsRequest(Message):
    """What every ECS activity is told: the rollout (whose tag holds the service), the target, the image."""

    rollout_id: str
    target: EcsTarget
    image: str
    progress_deadline_seconds: int


class EcsRoutesInput(EcsRequest):
    """A canary step: the candidate's share and header routes, applied capacity first."""

    step: int
    total_replicas: int
    routes: RouteState
    canary_scale: SetCanaryScale | None = None


class EcsRollOutInput(EcsRequest):
    """An in-place update of the service: a new task set behind the primary's own target group, old and new
    scaled against each other (maxSurge, maxUnavailable in tasks or percent of desiredCount) or the old
    stopped first (Recreate); Undo to an earlier task definition revision; Restart the current one."""

    kind: Literal["RollingUpdate", "Recreate", "Undo", "Restart"]
    max_surge: int | str | None = None
    max_unavailable: int | str | None = None
    to_revision: int = 0  # Undo: a task definition revision of the family; 0: the one before the primary's
    restarted_at: str = ""


class EcsSideInput(EcsRequest):
    """valueFrom.targetGroupValue: which side's target group (`Latest`: the candidate's; on an in-place
    update, the primary's own)."""

    role: Literal["Latest", "Stable"]
    in_place: bool = False


class EcsWindowInput(EcsRequest):
    """The rollback window on ECS: the revision before the primary's kept warm behind the other target group."""

    revision: int = 0  # switch_to_warm: which warm revision (a task definition revision)


class EcsSwitchInput(EcsRequest):
    """Blue-green: where production traffic goes (`preview` or `stable`), or the preview's share."""

    to: Literal["preview", "stable"] = "preview"
    weight: int | None = Field(None, ge=0, le=100)
    replicas: int | None = Field(None, ge=0)
