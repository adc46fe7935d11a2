"""Kubernetes provider: is a cluster reachable, and are its nodes Ready — a pipeline's infrastructure
check before a stage. The result is `{"reachable": bool, "nodes": n, "ready": n, "notReady": [names]}`;
an unreachable API server is the answer `reachable: false` (the check says no), not a provider error.
The client is the worker's own (one per kubeconfig context), handed in."""

from __future__ import annotations

from typing import Any

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from activities.targets.kubernetes.client import KubeClients
from models.analysis import Metric


class ClusterHealthSource:
    def __init__(self, clients: KubeClients):
        self.clients = clients

    def measure(self, metric: Metric, args: dict[str, str]) -> tuple[Any, str]:
        context = metric.provider.kubernetes.context
        query = f"nodes of {context}"
        try:
            nodes = self.clients.core(context).list_node(_request_timeout=10).items
        except (ApiException, HTTPError, OSError) as error:
            reason = f"{error.status} {error.reason}" if isinstance(error, ApiException) else type(error).__name__
            return {"reachable": False, "nodes": 0, "ready": 0, "notReady": [], "error": reason}, query
        ready = [n.metadata.name for n in nodes
                 if any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions or []))]
        return {"reachable": True, "nodes": len(nodes), "ready": len(ready),
                "notReady": sorted(n.metadata.name for n in nodes if n.metadata.name not in ready)}, query
