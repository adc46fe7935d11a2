"""Traffic routing in the spec: which router (`replicas`, `istio`, `nginx`, `gatewayAPI`) and its
objects, and the routes a canary step can set (`setHeaderRoute`, `setMirrorRoute`), plus
`RouteState`, the whole routing a step wants, which the router activities apply idempotently."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from models.specbase import DnsLabel, OneOf, SpecModel

HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"


class StringMatch(OneOf):
    CHOICES: ClassVar[tuple[str, ...]] = ("exact", "prefix", "regex")
    WHAT: ClassVar[str] = "string match"

    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None

    @property
    def kind(self) -> str:
        return self.chosen_key

    @property
    def value(self) -> str:
        return self.chosen_value


class RouteMatch(SpecModel):
    """One request property: a header (`headerName` + `headerValue`) or a cookie (`cookieName` + `cookieValue`)."""

    header_name: str | None = Field(None, pattern=HEADER_NAME)
    header_value: StringMatch | None = None
    cookie_name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$")
    cookie_value: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$")

    @model_validator(mode="after")
    def _check(self) -> RouteMatch:
        if (self.header_name is None) == (self.cookie_name is None):
            raise ValueError("a match needs exactly one of headerName, cookieName")
        if self.header_name is not None and self.header_value is None:
            raise ValueError("@headerValue: required with headerName")
        if self.cookie_name is not None and self.cookie_value is None:
            raise ValueError("@cookieValue: required with cookieName")
        return self


class SetHeaderRoute(SpecModel):
    """Send requests that match to the canary, whatever the weight (A/B by header or cookie); no
    `match` removes the route."""

    name: DnsLabel
    match: list[RouteMatch] | None = Field(None, min_length=1, max_length=8)


class SetMirrorRoute(SpecModel):
    """Copy `percentage` of the requests that match (all, without `match`) to the canary; the copies'
    responses are dropped (shadow traffic). No `percentage` removes the route."""

    name: DnsLabel
    percentage: int | None = Field(None, ge=1, le=100)
    match: list[RouteMatch] | None = Field(None, min_length=1, max_length=8)


class SetCanaryScale(OneOf):
    """How many canary pods run, independent of the weight (routers with their own weights only)."""

    replicas: int | None = Field(None, ge=0)
    weight: int | None = Field(None, ge=0, le=100)
    match_traffic_weight: bool | None = None

    CHOICES: ClassVar[tuple[str, ...]] = ("replicas", "weight", "matchTrafficWeight")
    WHAT: ClassVar[str] = "canary scale"


class Router(SpecModel):
    """What a router can do, declared by each router's block and checked by spec validation, so a
    strategy asks the router instead of naming it."""

    owns_weights: ClassVar[bool] = True  # False: the split is the ratio of ready pods
    routes_by_header: ClassVar[bool] = True
    mirrors: ClassVar[bool] = True

    def header_route_problem(self, route: SetHeaderRoute) -> str:
        """Why this router cannot route `route` ("" when it can)."""
        return ""

    def step_problem(self, router: str, step_kind: str, step: object) -> str:
        """Why this router (named `router` in messages) cannot do a canary step ("" when it can)."""
        if step_kind == "setCanaryScale" and not self.owns_weights:
            return f"the {router} router sets the canary scale from the weight"
        if step_kind == "setHeaderRoute":
            if not self.routes_by_header:
                return f"needs a router that routes by header ({', '.join(HEADER_ROUTERS)}), not {router}"
            return self.header_route_problem(step.set_header_route)  # type: ignore[attr-defined]
        if step_kind == "setMirrorRoute" and not self.mirrors:
            return f"needs a router that mirrors ({', '.join(MIRROR_ROUTERS)}), not {router}"
        return ""


class ReplicasRouting(Router):
    """Traffic follows the ratio of ready canary to stable pods behind the stable Service."""

    owns_weights: ClassVar[bool] = False
    routes_by_header: ClassVar[bool] = False
    mirrors: ClassVar[bool] = False


class IstioVirtualService(SpecModel):
    name: DnsLabel
    routes: list[str] | None = Field(None, min_length=1, description="HTTP routes to weight (default: all)")


class IstioDestinationRule(SpecModel):
    """Subset-level routing: the VirtualService's destinations are two subsets of one host; the engine
    keeps the subsets' labels on the stable pods (`pod-template-hash`) and the canary pods."""

    name: DnsLabel
    canary_subset_name: str = "canary"
    stable_subset_name: str = "stable"


class IstioRouting(Router):
    """Weights of an Istio VirtualService whose routes have the stable and canary Services (or, with a
    DestinationRule, its stable and canary subsets) as destinations."""

    virtual_service: IstioVirtualService
    destination_rule: IstioDestinationRule | None = None


class NginxRouting(Router):
    """A canary Ingress beside `stableIngress` with the ingress-nginx canary annotations."""

    mirrors: ClassVar[bool] = False  # ingress-nginx has no mirror
    stable_ingress: DnsLabel

    def header_route_problem(self, route: SetHeaderRoute) -> str:
        match = route.match
        if not match:
            return ""
        if len(match) != 1 or (match[0].header_value and match[0].header_value.kind != "exact"):
            return "@match: nginx matches one exact header or cookie"
        if match[0].cookie_name and match[0].cookie_value != "always":
            return "@match[0].cookieValue: ingress-nginx sends a request to the canary when its cookie is 'always'"
        return ""


class GatewayApiRouting(Router):
    """Weights of an HTTPRoute whose rules have the stable and canary Services as backendRefs."""

    http_route: DnsLabel


ROUTERS = ("replicas", "istio", "nginx", "gatewayAPI")


class TrafficRouting(OneOf):
    CHOICES: ClassVar[tuple[str, ...]] = ROUTERS
    WHAT: ClassVar[str] = "traffic router"

    replicas: ReplicasRouting | None = None
    istio: IstioRouting | None = None
    nginx: NginxRouting | None = None
    gateway_api: GatewayApiRouting | None = Field(None, alias="gatewayAPI")

    @property
    def router(self) -> str:
        return self.chosen_key

    @property
    def chosen(self) -> Router:
        """The chosen router's own block (its capabilities and checks)."""
        return self.chosen_value

    def step_problem(self, step_kind: str, step: object) -> str:
        """Why the chosen router cannot do a canary step ("" when it can)."""
        return self.chosen.step_problem(self.router, step_kind, step)


def _routers_that(capability: str) -> tuple[str, ...]:
    return tuple(name for name in ROUTERS if getattr(_MODELS[name], capability))


_MODELS: dict[str, type[Router]] = {"replicas": ReplicasRouting, "istio": IstioRouting, "nginx": NginxRouting,
                                    "gatewayAPI": GatewayApiRouting}
HEADER_ROUTERS = _routers_that("routes_by_header")  # for messages
MIRROR_ROUTERS = _routers_that("mirrors")


class RouteState(SpecModel):
    """Everything a canary step wants of the router: the weight, header routes, mirror routes."""

    model_config = {**SpecModel.model_config, "frozen": False}

    weight: int = 0
    header_routes: list[SetHeaderRoute] = Field(default_factory=list)
    mirror_routes: list[SetMirrorRoute] = Field(default_factory=list)

    def with_header_route(self, route: SetHeaderRoute) -> RouteState:
        others = [r for r in self.header_routes if r.name != route.name]
        return self.model_copy(update={"header_routes": others + ([route] if route.match else [])})

    def with_mirror_route(self, route: SetMirrorRoute) -> RouteState:
        others = [r for r in self.mirror_routes if r.name != route.name]
        return self.model_copy(update={"mirror_routes": others + ([route] if route.percentage else [])})

    @property
    def sends_to_canary(self) -> bool:
        return self.weight > 0 or bool(self.header_routes) or bool(self.mirror_routes)


def describe_match(match: list[RouteMatch]) -> str:
    return " & ".join(
        f"{m.header_name} {m.header_value.kind} {m.header_value.value!r}" if m.header_name
        else f"cookie {m.cookie_name}={m.cookie_value}"
        for m in match
    )


def describe_routes(state: RouteState) -> list[str]:
    """One line per route for status and the Web UI: "header beta: x-beta exact '1'", "mirror shadow: 20%"."""
    lines = [f"header {r.name}: {describe_match(r.match or [])}" for r in state.header_routes]
    lines += [f"mirror {r.name}: {r.percentage}%" + (f" of {describe_match(r.match)}" if r.match else "")
              for r in state.mirror_routes]
    return lines
