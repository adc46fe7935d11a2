"""A flag-definition document kept in one key of a ConfigMap: the applications mount it, and the kubelet
puts it in the file their flagd provider reads. A write is a JSON merge patch (RFC 7386) of that one
key — the ConfigMap's other keys, `binaryData`, labels and annotations are left as they are — carrying
the `resourceVersion` read, which the API server takes as a precondition (409 Conflict if the object
changed since; 404 if it was deleted since): a racing writer is refused, retried, never lost. A
flags key held in `binaryData` is refused, naming it. Built by the worker with its
Kubernetes clients (this module is not imported by the flag channel's workflow path)."""

from __future__ import annotations

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from temporalio.exceptions import ApplicationError

from activities.targets.flag.store import CONFLICT
from activities.targets.kubernetes.client import KubeClients, api_errors
from models.flags import FlagChannel

MERGE_PATCH = "application/merge-patch+json"


class ConfigMapBackend:
    def __init__(self, clients: KubeClients) -> None:
        self.clients = clients

    def where(self, channel: FlagChannel) -> str:
        c = channel.config_map
        return f"configmap {c.namespace}/{c.name} ({c.context})"

    def load(self, channel: FlagChannel) -> tuple[bytes | None, str]:
        c = channel.config_map
        try:
            found = self.clients.core(c.context).read_namespaced_config_map(c.name, c.namespace)
        except ApiException as error:
            if error.status == 404:
                return None, ""
            with api_errors(self.where(channel)):
                raise
        if c.key in (found.binary_data or {}):
            raise ApplicationError(f"{self.where(channel)}: key {c.key} is in binaryData; the channel writes a "
                                   "flagd document to data", type="Invalid", non_retryable=True)
        data = (found.data or {}).get(c.key)
        return (data.encode() if data is not None else None), found.metadata.resource_version

    def save(self, channel: FlagChannel, data: bytes, token: str) -> None:
        c = channel.config_map
        core = self.clients.core(c.context)
        try:
            if token:
                patch = {"metadata": {"resourceVersion": token}, "data": {c.key: data.decode()}}
                core.patch_namespaced_config_map(c.name, c.namespace, patch, _content_type=MERGE_PATCH)
            else:
                core.create_namespaced_config_map(c.namespace, client.V1ConfigMap(
                    metadata=client.V1ObjectMeta(name=c.name, namespace=c.namespace), data={c.key: data.decode()}))
        except ApiException as error:
            if error.status == 409 or (error.status == 404 and token):  # changed, or deleted, since read
                raise ApplicationError(f"{self.where(channel)} changed while writing: retried",
                                       type=CONFLICT) from None
            with api_errors(self.where(channel)):
                raise
