"""Small builders shared by tests: rollout documents and polling."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

from models.spec import Rollout, parse_rollout


def canary_document(
    name: str = "checkout-api",
    environment: str = "test",
    namespace: str = "shop",
    deployment: str = "checkout-api",
    image: str = "registry.local/checkout-api:1.4.2",
    steps: list[dict[str, Any]] | None = None,
    context: str = "local",
    progress_deadline_seconds: int = 120,
) -> dict[str, Any]:
    if steps is None:
        steps = [{"setWeight": 20}, {"pause": {"duration": "30s"}}, {"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]
    return {
        "apiVersion": "rollouts.durable.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "environment": environment},
        "spec": {
            "target": {"kubernetes": {"context": context, "namespace": namespace, "deployment": deployment}},
            "image": image,
            "progressDeadlineSeconds": progress_deadline_seconds,
            "strategy": {
                "canary": {
                    "stableService": deployment,
                    "canaryService": f"{deployment}-canary",
                    "trafficRouting": {"replicas": {}},
                    "steps": steps,
                }
            },
        },
    }


def canary_rollout(**kwargs: Any) -> Rollout:
    return parse_rollout(canary_document(**kwargs))


async def eventually(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2, what: str = "") -> Any:
    """Await `check()` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}; last value {last!r}")
