"""Istio router: the weights of a VirtualService's HTTP routes whose destinations are the stable and
canary Services (or, with a DestinationRule, its stable and canary subsets, whose labels the router
keeps on the right pods); header routes and matched mirror routes are HTTP routes of ours placed first (named
after the step's route, listed in an annotation); an unmatched mirror is `mirror` + `mirrorPercentage`
on the weighted routes themselves."""

from __future__ import annotations

import re
from typing import Any

from activities.targets.kubernetes.client import KubeClients, api_errors, invalid
from activities.targets.kubernetes.routing import OwnWeights, Routes, managed_names, set_managed_names, split
from activities.targets.kubernetes.routing.custom import CustomObject
from activities.targets.kubernetes.services import current_pod_template_hash, original_selector
from models.names import LABEL_POD_TEMPLATE_HASH, LABEL_ROLE
from models.routing import RouteMatch, RouteState


def istio_match(match: list[RouteMatch]) -> list[dict[str, Any]]:
    """Istio ORs the entries of `match` and ANDs within one: all our conditions go into one entry."""
    headers: dict[str, Any] = {}
    for m in match:
        if m.header_name is not None:
            headers[m.header_name.lower()] = {m.header_value.kind: m.header_value.value}
        else:
            headers["cookie"] = {"regex": cookie_regex(m.cookie_name, m.cookie_value)}
    return [{"headers": headers}]


def cookie_regex(name: str, value: str) -> str:
    return rf"^(.*?;\s*)?{re.escape(name)}={re.escape(value)}(;.*)?$"


class IstioRouter(OwnWeights):
    def __init__(self, clients: KubeClients, routes: Routes):
        t = routes.target
        self.clients, self.routes = clients, routes
        self.config = routes.routing.istio.virtual_service
        self.rule = routes.routing.istio.destination_rule
        # With a DestinationRule the subsets select by labels on one host: the Service is not pinned.
        self.pins_stable_service = self.rule is None
        api = clients.api(t.context)
        self.object = CustomObject(api, "networking.istio.io", "v1", "virtualservices", t.namespace, self.config.name,
                                   "VirtualService")
        if self.rule is not None:
            self.subsets = CustomObject(api, "networking.istio.io", "v1", "destinationrules", t.namespace,
                                        self.rule.name, "DestinationRule")

    def _is(self, destination: dict[str, Any], service: str) -> bool:
        """Whether a destination is the stable or canary side (`service` names which)."""
        if self.rule is not None:
            canary = service == self.routes.canary_service
            return destination.get("subset") == (self.rule.canary_subset_name if canary else self.rule.stable_subset_name)
        host = destination.get("host", "")
        ns = self.routes.target.namespace
        return host in (service, f"{service}.{ns}", f"{service}.{ns}.svc", f"{service}.{ns}.svc.cluster.local")

    def _weighted(self, vs: dict[str, Any]) -> list[dict[str, Any]]:
        """The HTTP routes we set weights on (named in the spec, or all but ours), checked."""
        ours = managed_names(vs)
        http = [r for r in (vs.get("spec") or {}).get("http") or [] if r.get("name") not in ours]
        if self.config.routes:
            known = {r.get("name") for r in http}
            missing = [name for name in self.config.routes if name not in known]
            if missing:
                raise invalid(f"{self.object.what}: no HTTP route named {missing[0]!r}")
            http = [r for r in http if r.get("name") in self.config.routes]
        if not http:
            raise invalid(f"{self.object.what}: no HTTP routes to weight")
        for route in http:
            destinations = [d.get("destination") or {} for d in route.get("route") or []]
            for service in (self.routes.stable_service, self.routes.canary_service):
                if sum(self._is(d, service) for d in destinations) != 1:
                    raise invalid(f"{self.object.what}: HTTP route {route.get('name') or '(unnamed)'} needs exactly "
                                  f"one destination with host {service}")
        return http

    def prepare(self) -> None:
        self._weighted(self.object.read())
        if self.rule is not None:
            self._label_subsets()

    def _label_subsets(self) -> None:
        """The stable subset selects the stable Deployment's current pods, the canary subset the canary's."""
        t = self.routes.target
        apps, core = self.clients.apps(t.context), self.clients.core(t.context)
        with api_errors(f"service {t.namespace}/{self.routes.stable_service}"):
            selector = original_selector(core.read_namespaced_service(self.routes.stable_service, t.namespace))
        stable_hash = current_pod_template_hash(apps, t, 600)
        wanted = {
            self.rule.stable_subset_name: {**selector, LABEL_POD_TEMPLATE_HASH: stable_hash},
            self.rule.canary_subset_name: {**selector, LABEL_ROLE: "canary"},
        }

        def label(rule: dict[str, Any]) -> None:
            subsets = (rule.get("spec") or {}).get("subsets") or []
            for name, labels in wanted.items():
                subset = next((x for x in subsets if x.get("name") == name), None)
                if subset is None:
                    raise invalid(f"{self.subsets.what}: no subset named {name!r}")
                subset["labels"] = labels

        self.subsets.update(label)

    def apply(self, state: RouteState) -> bool:
        return self.object.update(lambda vs: self._render(vs, state))

    def remove(self) -> None:
        self.apply(RouteState())

    def _render(self, vs: dict[str, Any], state: RouteState) -> None:
        ours = managed_names(vs)
        base = [r for r in vs["spec"].get("http") or [] if r.get("name") not in ours]
        weighted = self._weighted(vs)
        stable_weight, canary_weight = split(state.weight)
        canary = None
        for route in weighted:
            for entry in route["route"]:
                is_canary = self._is(entry["destination"], self.routes.canary_service)
                entry["weight"] = canary_weight if is_canary else stable_weight
                if is_canary:
                    canary = {k: v for k, v in entry["destination"].items()}
        unmatched = [m for m in state.mirror_routes if not m.match]
        for route in weighted:
            route.pop("mirror", None)
            route.pop("mirrorPercentage", None)
            if unmatched:
                route["mirror"] = canary
                route["mirrorPercentage"] = {"value": float(unmatched[-1].percentage)}
        added = [
            {"name": h.name, "match": istio_match(h.match), "route": [{"destination": canary, "weight": 100}]}
            for h in state.header_routes
        ] + [
            {"name": m.name, "match": istio_match(m.match), "route": weighted[0]["route"], "mirror": canary,
             "mirrorPercentage": {"value": float(m.percentage)}}
            for m in state.mirror_routes if m.match
        ]
        vs["spec"]["http"] = added + base
        set_managed_names(vs, [r["name"] for r in added])
