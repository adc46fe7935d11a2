"""NGINX router (ingress-nginx): a canary Ingress `<stableIngress>-canary` with the same rules, its
backends the canary Service, and the `nginx.ingress.kubernetes.io/canary*` annotations that carry the
weight and the header or cookie route. Removed when the rollout ends."""

from __future__ import annotations

from kubernetes import client

from activities.targets.kubernetes.client import KubeClients, api_errors, create_if_absent, invalid, read_optional
from activities.targets.kubernetes.routing import OwnWeights, Routes
from models.names import LABEL_ROLE
from models.routing import RouteState

PREFIX = "nginx.ingress.kubernetes.io/"
CANARY, WEIGHT = PREFIX + "canary", PREFIX + "canary-weight"
BY_HEADER, BY_HEADER_VALUE, BY_COOKIE = PREFIX + "canary-by-header", PREFIX + "canary-by-header-value", PREFIX + "canary-by-cookie"
OURS = (CANARY, WEIGHT, BY_HEADER, BY_HEADER_VALUE, BY_COOKIE)


def annotations_for(state: RouteState) -> dict[str, str]:
    wanted = {CANARY: "true", WEIGHT: str(state.weight)}
    for route in state.header_routes[-1:]:  # ingress-nginx has one header route per canary Ingress
        match = route.match[0]
        if match.header_name is not None:
            wanted[BY_HEADER], wanted[BY_HEADER_VALUE] = match.header_name, match.header_value.value
        else:
            wanted[BY_COOKIE] = match.cookie_name
    return wanted


class NginxRouter(OwnWeights):
    def __init__(self, clients: KubeClients, routes: Routes):
        t = routes.target
        self.routes = routes
        self.api = client.NetworkingV1Api(clients.api(t.context))
        self.ns, self.stable_name = t.namespace, routes.routing.nginx.stable_ingress
        self.canary_name = f"{self.stable_name}-canary"

    def _stable(self) -> client.V1Ingress:
        with api_errors(f"ingress {self.ns}/{self.stable_name}"):
            ingress = self.api.read_namespaced_ingress(self.stable_name, self.ns)
        backends = [
            path.backend.service.name
            for rule in ingress.spec.rules or []
            for path in (rule.http.paths if rule.http else [])
            if path.backend and path.backend.service
        ]
        if self.routes.stable_service not in backends:
            raise invalid(f"ingress {self.ns}/{self.stable_name} has no backend for service {self.routes.stable_service}")
        return ingress

    def prepare(self) -> None:
        stable = self._stable()
        rules = client.ApiClient().sanitize_for_serialization(stable.spec.rules)
        for rule in rules:
            for path in (rule.get("http") or {}).get("paths") or []:
                service = (path.get("backend") or {}).get("service") or {}
                if service.get("name") == self.routes.stable_service:
                    service["name"] = self.routes.canary_service
        body = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": self.canary_name, "labels": {LABEL_ROLE: "canary"},
                         "annotations": {**(stable.metadata.annotations or {}), CANARY: "true", WEIGHT: "0"}},
            "spec": {"ingressClassName": stable.spec.ingress_class_name, "rules": rules},
        }
        with api_errors(f"ingress {self.ns}/{self.canary_name}"):
            create_if_absent(self.api.create_namespaced_ingress, self.ns, body)

    def apply(self, state: RouteState) -> bool:
        with api_errors(f"ingress {self.ns}/{self.canary_name}"):
            ingress = self.api.read_namespaced_ingress(self.canary_name, self.ns)
        present = dict(ingress.metadata.annotations or {})
        wanted = {k: v for k, v in present.items() if k not in OURS} | annotations_for(state)
        if wanted == present:
            return False
        ingress.metadata.annotations = wanted
        with api_errors(f"ingress {self.ns}/{self.canary_name}"):
            self.api.replace_namespaced_ingress(self.canary_name, self.ns, ingress)  # resourceVersion-checked
        return True

    def remove(self) -> None:
        if read_optional(self.api.read_namespaced_ingress, self.canary_name, self.ns) is None:
            return
        self.apply(RouteState())
        with api_errors(f"ingress {self.ns}/{self.canary_name}"):
            try:
                self.api.delete_namespaced_ingress(self.canary_name, self.ns)
            except client.ApiException as error:
                if error.status != 404:
                    raise
