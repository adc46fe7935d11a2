"""How simulated images behave, declared in the cluster itself: ConfigMap `kube-system/durable-rollouts-sim`,
key `images.yaml`, a mapping of image patterns (fnmatch) to behaviour, first match wins:

    "*:bad-*":   {ready: never}
    "*:crash-*": {ready: crashloop}
    "*:slow-*":  {readyDelaySeconds: 8, errorRate: 0.05, latencyMs: 900}

Both the fake kubelet (readiness) and the traffic simulator (errors, latency) read it.
"""

from __future__ import annotations

import fnmatch
import threading
import time
from dataclasses import dataclass

import yaml
from kubernetes import client

CONFIGMAP_NAMESPACE = "kube-system"
CONFIGMAP_NAME = "durable-rollouts-sim"
KEY = "images.yaml"


@dataclass(frozen=True)
class Behaviour:
    ready: str = "yes"  # yes | never | crashloop
    ready_delay_seconds: float | None = None
    error_rate: float = 0.0
    latency_ms: float = 40.0


class Behaviours:
    """Reads the ConfigMap at most every `max_age` seconds; a missing ConfigMap means every image is healthy.

    The kubelet uses max_age 0 (a pod started after a declaration always sees it); the traffic
    simulator, which asks for every request, 1 second.
    """

    def __init__(self, core: client.CoreV1Api, max_age: float = 1.0):
        self._core = core
        self._max_age = max_age
        self._rules: list[tuple[str, Behaviour]] = []
        self._read_at = 0.0
        self._lock = threading.Lock()

    def for_image(self, image: str) -> Behaviour:
        with self._lock:
            if time.monotonic() - self._read_at >= self._max_age:
                self._rules = self._read()
                self._read_at = time.monotonic()
            rules = self._rules
        for pattern, behaviour in rules:
            if fnmatch.fnmatchcase(image, pattern):
                return behaviour
        return Behaviour()

    def _read(self) -> list[tuple[str, Behaviour]]:
        try:
            cm = self._core.read_namespaced_config_map(CONFIGMAP_NAME, CONFIGMAP_NAMESPACE)
        except client.ApiException:
            return []
        data = yaml.safe_load((cm.data or {}).get(KEY) or "{}") or {}
        return [
            (
                str(pattern),
                Behaviour(
                    ready=str(spec.get("ready", "yes")),
                    ready_delay_seconds=spec.get("readyDelaySeconds"),
                    error_rate=float(spec.get("errorRate", 0.0)),
                    latency_ms=float(spec.get("latencyMs", 40.0)),
                ),
            )
            for pattern, spec in data.items()
            if isinstance(spec, dict)
        ]


def declare_images(core: client.CoreV1Api, rules: dict[str, dict]) -> None:
    """Add (or change) image behaviours in the ConfigMap, keeping the others (used by tests and the demo)."""
    for _ in range(10):
        try:
            cm = core.read_namespaced_config_map(CONFIGMAP_NAME, CONFIGMAP_NAMESPACE)
        except client.ApiException as error:
            if error.status != 404:
                raise
            body = client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name=CONFIGMAP_NAME, namespace=CONFIGMAP_NAMESPACE),
                data={KEY: yaml.safe_dump(rules)},
            )
            try:
                core.create_namespaced_config_map(CONFIGMAP_NAMESPACE, body)
                return
            except client.ApiException as conflict:
                if conflict.status != 409:
                    raise
                continue
        merged = {**(yaml.safe_load((cm.data or {}).get(KEY) or "{}") or {}), **rules}
        cm.data = {**(cm.data or {}), KEY: yaml.safe_dump(merged)}
        try:
            core.replace_namespaced_config_map(CONFIGMAP_NAME, CONFIGMAP_NAMESPACE, cm)  # resourceVersion-checked
            return
        except client.ApiException as conflict:
            if conflict.status != 409:
                raise
    raise RuntimeError("could not update the image behaviour ConfigMap (conflicts)")
