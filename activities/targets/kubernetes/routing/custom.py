"""Read-modify-replace of one custom object (VirtualService, HTTPRoute) with its resourceVersion: a
concurrent change makes the replace fail with 409, which Temporal retries with a fresh read.

A change that the API server would store as the object already is (our rendering lacks the fields its
schema defaults, e.g. an HTTPRoute rule's path match) is found by a server-side dry run and not
written: a retried step changes nothing the second time."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from kubernetes import client

from activities.targets.kubernetes.client import api_errors


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
            stored = self.api.replace_namespaced_custom_object(*self.coordinates, wanted, dry_run="All")
            if _content(stored) == _content(current):
                return False
            self.api.replace_namespaced_custom_object(*self.coordinates, wanted)
        return True


def _content(obj: dict[str, Any]) -> tuple:
    meta = obj.get("metadata") or {}
    return obj.get("spec"), meta.get("annotations"), meta.get("labels")
