"""Gateway API router: the weights of an HTTPRoute's rules whose backendRefs are the stable and canary
Services; header routes and matched mirror routes are rules of ours (named after the step's route,
listed in an annotation); an unmatched mirror is a `RequestMirror` filter on the weighted rules."""

from __future__ import annotations

import re
from typing import Any

from activities.targets.kubernetes.client import KubeClients, invalid
from activities.targets.kubernetes.routing import OwnWeights, Routes, managed_names, set_managed_names, split
from activities.targets.kubernetes.routing.custom import CustomObject
from models.routing import RouteMatch, RouteState


def gateway_matches(match: list[RouteMatch]) -> list[dict[str, Any]]:
    """Gateway API ORs `matches` and ANDs the headers of one: all our conditions go into one entry."""
    headers = []
    for m in match:
        if m.header_name is not None:
            kind, value = m.header_value.kind, m.header_value.value
            if kind == "exact":
                headers.append({"name": m.header_name, "type": "Exact", "value": value})
            else:
                regex = value if kind == "regex" else f"^{re.escape(value)}"
                headers.append({"name": m.header_name, "type": "RegularExpression", "value": regex})
        else:
            regex = rf"^(.*?;\s*)?{re.escape(m.cookie_name)}={re.escape(m.cookie_value)}(;.*)?$"
            headers.append({"name": "Cookie", "type": "RegularExpression", "value": regex})
    return [{"headers": headers}]


class GatewayApiRouter(OwnWeights):
    def __init__(self, clients: KubeClients, routes: Routes):
        t = routes.target
        self.routes = routes
        self.object = CustomObject(clients.api(t.context), "gateway.networking.k8s.io", "v1", "httproutes",
                                   t.namespace, routes.routing.gateway_api.http_route, "HTTPRoute")

    def _weighted(self, route: dict[str, Any]) -> list[dict[str, Any]]:
        ours = managed_names(route)
        rules = [r for r in (route.get("spec") or {}).get("rules") or [] if r.get("name") not in ours]
        weighted = [r for r in rules if any(b.get("name") == self.routes.stable_service for b in r.get("backendRefs") or [])]
        if not weighted:
            raise invalid(f"{self.object.what}: no rule has a backendRef to service {self.routes.stable_service}")
        for index, rule in enumerate(weighted):
            names = [b.get("name") for b in rule.get("backendRefs") or []]
            if names.count(self.routes.canary_service) != 1 or names.count(self.routes.stable_service) != 1:
                raise invalid(f"{self.object.what}: rule {rule.get('name') or index} needs one backendRef to "
                              f"{self.routes.stable_service} and one to {self.routes.canary_service}")
        return weighted

    def prepare(self) -> None:
        self._weighted(self.object.read())

    def apply(self, state: RouteState) -> bool:
        return self.object.update(lambda route: self._render(route, state))

    def remove(self) -> None:
        self.apply(RouteState())

    def _mirror(self, canary: dict[str, Any], percent: int) -> dict[str, Any]:
        backend = {k: v for k, v in canary.items() if k in ("group", "kind", "name", "namespace", "port")}
        return {"type": "RequestMirror", "requestMirror": {"backendRef": backend, "percent": percent}}

    def _render(self, route: dict[str, Any], state: RouteState) -> None:
        ours = managed_names(route)
        base = [r for r in route["spec"].get("rules") or [] if r.get("name") not in ours]
        weighted = self._weighted(route)
        stable_weight, canary_weight = split(state.weight)
        canary: dict[str, Any] = {}
        for rule in weighted:
            for backend in rule["backendRefs"]:
                is_canary = backend.get("name") == self.routes.canary_service
                backend["weight"] = canary_weight if is_canary else stable_weight
                if is_canary:
                    canary = {k: v for k, v in backend.items() if k != "weight"}
        unmatched = [m for m in state.mirror_routes if not m.match]
        for rule in weighted:
            filters = [f for f in rule.get("filters") or [] if not self._is_our_mirror(f)]
            filters += [self._mirror(canary, m.percentage) for m in unmatched[-1:]]
            if filters:
                rule["filters"] = filters
            else:
                rule.pop("filters", None)
        added = [
            {"name": h.name, "matches": gateway_matches(h.match), "backendRefs": [{**canary, "weight": 100}]}
            for h in state.header_routes
        ] + [
            {"name": m.name, "matches": gateway_matches(m.match), "backendRefs": weighted[0]["backendRefs"],
             "filters": [self._mirror(canary, m.percentage)]}
            for m in state.mirror_routes if m.match
        ]
        route["spec"]["rules"] = added + base
        set_managed_names(route, [r["name"] for r in added])

    def _is_our_mirror(self, f: dict[str, Any]) -> bool:
        backend = (f.get("requestMirror") or {}).get("backendRef") or {}
        return f.get("type") == "RequestMirror" and backend.get("name") == self.routes.canary_service
