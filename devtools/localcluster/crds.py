"""The traffic routers' upstream CRDs, installed into the local cluster from `../shared/k8s/crds/`:
Istio's (unmodified) and Gateway API v1.6.1's HTTPRoute, whose six `default: ""` keys Kubernetes 1.20
rejects and which are removed before creating it (type, enum and min/max validation still apply;
1.20 ignores CEL rules). Idempotent; waits until each CRD is Established."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

import localcluster

SHARED = localcluster.SHARED / "k8s" / "crds"
FILES = (
    "istio/customresourcedefinitions.gen.v1.30.3.yaml",
    "gateway-api-v1.6.1/gateway.networking.k8s.io_httproutes.yaml",
)


def without_empty_defaults(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: without_empty_defaults(v) for k, v in node.items() if not (k == "default" and v == "")}
    if isinstance(node, list):
        return [without_empty_defaults(v) for v in node]
    return node


def router_crds(shared: Path = SHARED) -> list[dict[str, Any]]:
    documents = []
    for name in FILES:
        for document in yaml.safe_load_all((shared / name).read_text()):
            if document and document.get("kind") == "CustomResourceDefinition":
                gateway = document["spec"]["group"] == "gateway.networking.k8s.io"
                documents.append(without_empty_defaults(document) if gateway else document)
    return documents


def install_router_crds(api: client.ApiClient, shared: Path = SHARED, timeout: float = 60) -> list[str]:
    """Create the CRDs that are missing; returns the names of all of them once Established."""
    if not shared.is_dir():
        raise FileNotFoundError(f"{shared} not found: the upstream CRDs live in ../shared beside the repo")
    extensions = client.ApiextensionsV1Api(api)
    names = []
    for crd in router_crds(shared):
        try:
            extensions.create_custom_resource_definition(crd)
        except client.ApiException as error:
            if error.status != 409:
                raise
        names.append(crd["metadata"]["name"])
    deadline = time.monotonic() + timeout
    for name in names:
        while not _established(extensions.read_custom_resource_definition(name)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} not Established after {timeout}s")
            time.sleep(0.2)
    return names


def _established(crd: Any) -> bool:
    return any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or []))
