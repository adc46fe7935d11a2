"""What an example rollout refers to, made on the local cluster the way a team would already have it: the
namespace, the target Deployment on the previous version with its Service, and the router's objects in
front of it — an Istio VirtualService (and DestinationRule), the Ingress for ingress-nginx, a Gateway API
HTTPRoute — routing to the stable and canary (or active and preview) Services, with simulated traffic
(and the example's audience: the headers and cookies its routes match). `rollout demo -f FILE` and the
tests prepare every file in `examples/` with it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from kubernetes import client

from localcluster.traffic import ANNOTATION_AUDIENCE, ANNOTATION_RPS
from localcluster.workload import deploy
from models.routing import RouteMatch, TrafficRouting
from models.spec import Rollout

RPS = 200


@dataclass(frozen=True)
class Prepared:
    namespace: str
    stable_image: str
    entry: str  # where the simulator sends requests: "service/NAME", "virtualservice/NAME", ...
    service: str


def previous_version(image: str) -> str:
    """The version the example replaces: one patch (or minor) release back, else `<tag>-previous`."""
    repo, _, tag = image.rpartition(":")
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)(.*)", tag)
    if match:
        major, minor, patch = (int(match.group(i)) for i in (1, 2, 3))
        tag = f"{major}.{minor}.{patch - 1}" if patch else f"{major}.{max(minor - 1, 0)}.9"
    else:
        tag = f"{tag}-previous"
    return f"{repo}:{tag}"


def _routing(rollout: Rollout) -> tuple[TrafficRouting | None, str, str, list[RouteMatch]]:
    """(router config, stable Service, canary Service, audience) the spec's strategy routes with."""
    st = rollout.spec.strategy
    if st.canary:
        matches = [m for step in st.canary.steps if step.set_header_route and step.set_header_route.match
                   for m in step.set_header_route.match]
        return st.canary.traffic_routing, st.canary.stable_service, st.canary.canary_service, matches
    if st.ab_test:
        return st.ab_test.traffic_routing, st.ab_test.stable_service, st.ab_test.canary_service, list(st.ab_test.audience)
    if st.blue_green:
        return st.blue_green.traffic_routing, st.blue_green.active_service, st.blue_green.preview_service, []
    return None, rollout.spec.service or rollout.spec.target.kubernetes.deployment, "", []


def _audience(matches: list[RouteMatch]) -> list[dict]:
    """A fifth of the simulated requests carry what the routes match (split among them)."""
    members = []
    for m in matches:
        if m.header_name is not None:
            members.append({"header": m.header_name, "value": m.header_value.value})
        else:
            members.append({"cookie": m.cookie_name, "value": m.cookie_value})
    return [{**m, "share": 0.2 / len(members)} for m in members]


def _meta(name: str, audience: list[dict]) -> dict:
    return {"name": name, "annotations": {ANNOTATION_RPS: str(RPS), ANNOTATION_AUDIENCE: json.dumps(audience)}}


def router_objects(routing: TrafficRouting, stable: str, canary: str, audience: list[dict]) -> list[dict]:
    """The router's objects (Kubernetes manifests) routing everything to `stable`, `canary` at weight 0."""
    if routing.istio is not None:
        vs, rule = routing.istio.virtual_service, routing.istio.destination_rule
        if rule is not None:
            destinations = [{"host": stable, "subset": rule.stable_subset_name},
                            {"host": stable, "subset": rule.canary_subset_name}]
        else:
            destinations = [{"host": stable}, {"host": canary}]
        http = [{"name": name, "route": [{"destination": {**d, "port": {"number": 80}}, "weight": w}
                                         for d, w in zip(destinations, (100, 0), strict=True)]}
                for name in vs.routes or ["primary"]]
        objects = [{"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": _meta(vs.name, audience),
                    "spec": {"hosts": [stable], "http": http}}]
        if rule is not None:
            objects.append({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                            "metadata": {"name": rule.name},
                            "spec": {"host": stable, "subsets": [{"name": rule.stable_subset_name, "labels": {}},
                                                                 {"name": rule.canary_subset_name, "labels": {}}]}})
        return objects
    if routing.gateway_api is not None:
        return [{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                 "metadata": _meta(routing.gateway_api.http_route, audience),
                 "spec": {"parentRefs": [{"name": "public"}], "hostnames": [f"{stable}.example.com"], "rules": [{
                     "name": "main", "backendRefs": [{"name": stable, "port": 80, "weight": 100},
                                                     {"name": canary, "port": 80, "weight": 0}]}]}}]
    if routing.nginx is not None:
        return [{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                 "metadata": _meta(routing.nginx.stable_ingress, audience),
                 "spec": {"ingressClassName": "nginx", "rules": [{"host": f"{stable}.example.com", "http": {"paths": [{
                     "path": "/", "pathType": "Prefix",
                     "backend": {"service": {"name": stable, "port": {"number": 80}}}}]}}]}}]
    return []  # the replica ratio: the Service is all there is


_PLURALS = {"VirtualService": "virtualservices", "DestinationRule": "destinationrules", "HTTPRoute": "httproutes"}


def _apply(api: client.ApiClient, namespace: str, body: dict) -> None:
    """Create the object, or replace it with `body` (the demo starts from the same objects every run)."""
    name, kind = body["metadata"]["name"], body["kind"]
    if kind == "Ingress":
        networking = client.NetworkingV1Api(api)
        try:
            networking.create_namespaced_ingress(namespace, body)
        except client.ApiException as error:
            if error.status != 409:
                raise
            current = networking.read_namespaced_ingress(name, namespace)
            body["metadata"]["resourceVersion"] = current.metadata.resource_version
            networking.replace_namespaced_ingress(name, namespace, body)
        return
    group, version = body["apiVersion"].split("/")
    custom = client.CustomObjectsApi(api)
    try:
        custom.create_namespaced_custom_object(group, version, namespace, _PLURALS[kind], body)
    except client.ApiException as error:
        if error.status != 409:
            raise
        current = custom.get_namespaced_custom_object(group, version, namespace, _PLURALS[kind], name)
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        custom.replace_namespaced_custom_object(group, version, namespace, _PLURALS[kind], name, body)


def prepare(api: client.ApiClient, rollout: Rollout, replicas: int = 5) -> Prepared:
    """Everything `rollout` refers to, on its previous version, ready; again from the start on a re-run."""
    target = rollout.spec.target.kubernetes
    stable_image = previous_version(rollout.spec.image)
    routing, stable, canary, matches = _routing(rollout)
    objects = router_objects(routing, stable, canary, _audience(matches)) if routing is not None else []
    deploy(api, target.namespace, target.deployment, stable_image, replicas, rps=0 if objects else RPS)
    core = client.CoreV1Api(api)
    if stable != target.deployment:  # a Service of another name selecting the Deployment's pods
        body = client.V1Service(metadata=client.V1ObjectMeta(name=stable),
                                spec=client.V1ServiceSpec(selector={"app": target.deployment},
                                                          ports=[client.V1ServicePort(port=80, target_port=8080)]))
        try:
            core.create_namespaced_service(target.namespace, body)
        except client.ApiException as error:
            if error.status != 409:
                raise
    for body in objects:
        _apply(api, target.namespace, body)
    entry = f"{objects[0]['kind'].lower()}/{objects[0]['metadata']['name']}" if objects else f"service/{stable}"
    return Prepared(namespace=target.namespace, stable_image=stable_image, entry=entry, service=stable)
