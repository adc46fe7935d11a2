"""Read-modify-replace of one custom object (VirtualService, HTTPRoute) with its resourceVersion: a
concurrent change makes the replace fail with 409, which Temporal retries with a fresh read."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from kubernetes import client

from activities.kube import api_errors


class CustomObject:
    def __init__(self, api: client.ApiClient, group: str, version: str, plural: str, namespace: str, name: str,
                 kind: str):
        self.api = client.CustomObjectsApi(api)
        self.coordinates = (group, version, namespace, plural, name)
        self.what = f"{kind.lower()} {namespace}/{name}"

    def read(self) -> dict[str, Any]:
        with api_errors(self.what):
            return self.api.get_namespaced_custom_object(*self.coordinates)

    def update(self, change: Callable[[dict[str, Any]], None]) -> bool:
        """Apply `change` to a copy of the object; replace it only if something differs."""
        current = self.read()
        wanted = copy.deepcopy(current)
        change(wanted)
        if wanted == current:
            return False
        with api_errors(self.what):
            self.api.replace_namespaced_custom_object(*self.coordinates, wanted)
        return True
