"""The router objects a team would already have in front of Service `web` (and `web-canary`), created
in a test namespace with simulated traffic: an Istio VirtualService, an Ingress for ingress-nginx, a
Gateway API HTTPRoute. 20% of the simulated requests carry `x-beta: 1`."""

from __future__ import annotations

import json

from kubernetes import client

from localcluster.traffic import ANNOTATION_AUDIENCE, ANNOTATION_RPS

AUDIENCE = [{"header": "x-beta", "value": "1", "share": 0.2}]


def _meta(name: str) -> dict:
    return {"name": name, "annotations": {ANNOTATION_RPS: "250", ANNOTATION_AUDIENCE: json.dumps(AUDIENCE)}}


def create_router_objects(api: client.ApiClient, namespace: str, router: str) -> str:
    """Create the router's object named `web`; returns the simulator's entry name for it."""
    custom = client.CustomObjectsApi(api)
    if router == "istio":
        body = {
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": _meta("web"),
            "spec": {"hosts": ["web"], "http": [{"name": "primary", "route": [
                {"destination": {"host": "web", "port": {"number": 80}}, "weight": 100},
                {"destination": {"host": "web-canary", "port": {"number": 80}}, "weight": 0},
            ]}]},
        }
        custom.create_namespaced_custom_object("networking.istio.io", "v1", namespace, "virtualservices", body)
        return "virtualservice/web"
    if router == "gatewayAPI":
        body = {
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": _meta("web"),
            "spec": {"parentRefs": [{"name": "public"}], "hostnames": ["web.example.com"], "rules": [{
                "name": "main",
                "backendRefs": [{"name": "web", "port": 80, "weight": 100}, {"name": "web-canary", "port": 80, "weight": 0}],
            }]},
        }
        custom.create_namespaced_custom_object("gateway.networking.k8s.io", "v1", namespace, "httproutes", body)
        return "httproute/web"
    assert router == "nginx"
    body = {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": _meta("web"),
        "spec": {"ingressClassName": "nginx", "rules": [{"host": "web.example.com", "http": {"paths": [{
            "path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}},
        }]}}]},
    }
    client.NetworkingV1Api(api).create_namespaced_ingress(namespace, body)
    return "ingress/web"


def routing_for(router: str) -> dict:
    return {
        "istio": {"istio": {"virtualService": {"name": "web", "routes": ["primary"]}}},
        "nginx": {"nginx": {"stableIngress": "web"}},
        "gatewayAPI": {"gatewayAPI": {"httpRoute": "web"}},
    }[router]


def read_router_object(api: client.ApiClient, namespace: str, router: str) -> dict:
    custom = client.CustomObjectsApi(api)
    if router == "istio":
        return custom.get_namespaced_custom_object("networking.istio.io", "v1", namespace, "virtualservices", "web")
    if router == "gatewayAPI":
        return custom.get_namespaced_custom_object("gateway.networking.k8s.io", "v1", namespace, "httproutes", "web")
    networking = client.NetworkingV1Api(api)
    try:
        canary = networking.read_namespaced_ingress("web-canary", namespace)
    except client.ApiException as error:
        assert error.status == 404
        return {}
    return dict(canary.metadata.annotations or {})


def weights(obj: dict, router: str) -> tuple[int, int]:
    """(stable, canary) weights the object says now."""
    if router == "istio":
        route = next(r for r in obj["spec"]["http"] if r["name"] == "primary")
        return tuple(d.get("weight", 0) for d in route["route"])
    if router == "gatewayAPI":
        rule = next(r for r in obj["spec"]["rules"] if r.get("name") == "main")
        return tuple(b.get("weight", 1) for b in rule["backendRefs"])
    canary = int(obj.get("nginx.ingress.kubernetes.io/canary-weight", "0"))
    return 100 - canary, canary
