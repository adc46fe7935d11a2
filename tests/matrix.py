"""The durability matrix's pieces: one rollout per strategy (each with an analysis gate on the real
Prometheus), the effects each must apply exactly once (read from the kube-apiserver audit log), a
supervisor that restarts killed workers, and the record of every cell for `bench/durability.py`."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client

from models.spec import Rollout, parse_rollout
from models.status import Phase, RolloutStatus
from tests import figures
from tests.helpers import canary_document, read_audit
from tests.router_objects import create_router_objects, routing_for

STRATEGIES = ("canary", "blueGreen", "rollingUpdate", "recreate", "abTest")
ANALYSED = ("canary", "blueGreen", "rollingUpdate")  # the strategies with an analysis gate (recreate and A/B have none)
BETA = {"headerName": "x-beta", "headerValue": {"exact": "1"}}  # the A/B test's audience
# The activities that change a cluster, per strategy: the step boundaries a worker is killed after.
EFFECTS = {
    "canary": ["prepare_canary", "set_canary_weight", "promote_canary"],
    "blueGreen": ["prepare_blue_green", "scale_preview", "switch_active", "complete_blue_green"],
    "rollingUpdate": ["roll_out_deployment"],
    "recreate": ["roll_out_deployment"],
    "abTest": ["prepare_canary", "set_canary_weight", "promote_canary"],
}
# A/B through an HTTPRoute: the canary scaled to 2 for the audience, then to 4 for promotion (it takes all
# traffic while stable takes the new image), then 0; the route gains the audience's header rule once and
# loses it once.
AB_EFFECTS: dict[str, list[Any]] = {
    "canary sizes": [(2, None), (2, "0"), (2, "1"), (4, None), (0, None)],  # (replicas, step marked done)
    "route rules": [[[100], [100, 0]], [[0, 100]], [[100, 0]]],  # each write's backend weights per rule
    "canary created": ["create"],
}
# Long activities (they wait for pods to become ready): killed a second into them.
LONG = {"canary": ["set_canary_weight"], "blueGreen": ["scale_preview"], "rollingUpdate": ["roll_out_deployment"],
        "recreate": ["roll_out_deployment"], "abTest": ["set_canary_weight"]}


def rollout(strategy: str, unique: str, namespace: str, image: str, prometheus: str, **metric: Any) -> Rollout:
    """A rollout that finishes on its own (no person needed) through an analysis gate whose query goes
    to `prometheus` (the real one, or a fault proxy in front of it); `metric` changes the metric."""
    gate = {"templates": [{"templateName": "up"}]}
    strategies = {
        "canary": {"canary": {"stableService": "web", "canaryService": "web-canary", "trafficRouting": {"replicas": {}},
                              "steps": [{"setWeight": 25}, {"pause": {"duration": "1s"}}, {"setWeight": 50},
                                        {"analysis": gate}, {"setWeight": 100}]}},
        "blueGreen": {"blueGreen": {"activeService": "web", "previewService": "web-preview", "previewReplicaCount": 2,
                                    "prePromotionAnalysis": gate, "scaleDownDelaySeconds": 0,
                                    "abortScaleDownDelaySeconds": 0}},
        "rollingUpdate": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0, "analysis": gate}},
        "recreate": {"recreate": {}},
        "abTest": {"abTest": {"stableService": "web", "canaryService": "web-canary", "trafficRouting": routing_for(
            "gatewayAPI"), "audience": [BETA], "replicas": 2, "duration": "2s", "afterDuration": "promote"}},
    }
    document = canary_document(name=f"m-{unique}", namespace=namespace, deployment="web", image=image,
                               strategy=strategies[strategy], progress_deadline_seconds=120)
    if strategy in ANALYSED:
        document["spec"]["analysis"] = {"templates": [{"name": "up", "metrics": [{
            "name": "scraped", "count": 4, "interval": "1s", "successCondition": "result[0] >= 1",
            "provider": {"prometheus": {"address": prometheus, "query": "count(up == 1)"}}, **metric}]}]}
    return parse_rollout(document)


def prepare_target(strategy: str, api: client.ApiClient, namespace: str) -> None:
    """What a strategy needs beside the workload: the A/B test's HTTPRoute."""
    if strategy == "abTest":
        create_router_objects(api, namespace, "gatewayAPI")


def _changes(rows: list[Any]) -> list[Any]:
    """Consecutive repeats folded: a write repeated after a lost answer changes nothing the second time."""
    return [r for i, r in enumerate(rows) if i == 0 or r != rows[i - 1]]


def effects(audit: Path, strategy: str, namespace: str) -> dict[str, list[Any]]:
    """The ordered writes that matter for `strategy`, each list as it should read if every effect
    happened once."""
    if strategy == "abTest":
        canary = read_audit(audit, namespace, "web-canary")
        route = read_audit(audit, namespace, "web", "httproutes")
        return {
            "canary sizes": [(w["replicas"], w["step"]) for w in canary if w["verb"] == "patch" and w["replicas"] is not None],
            "route rules": [[[b.get("weight") for b in r.get("backendRefs") or []] for r in w["body"]["spec"]["rules"]]
                            for w in route if w["verb"] != "create"],
            "canary created": [w["verb"] for w in canary if w["verb"] == "create"],
        }
    if strategy == "canary":
        canary = read_audit(audit, namespace, "web-canary")
        stable = read_audit(audit, namespace, "web")
        return {
            "canary weights": [w["weight"] for w in canary if w["verb"] == "patch" and w["weight"] not in (None, "0")],
            "stable sizes": [w["replicas"] for w in stable if w["verb"] == "patch" and w["replicas"] is not None],
            "canary created": [w["verb"] for w in canary if w["verb"] == "create"],
        }
    if strategy == "blueGreen":
        services = read_audit(audit, namespace, "web", "services")
        preview = read_audit(audit, namespace, "web-preview")
        return {
            "active selector": [sorted(w["selector"]) for w in services if w["verb"] != "create"],
            "preview sizes": [w["replicas"] for w in preview if w["verb"] == "patch"],
            "preview created": [w["verb"] for w in preview if w["verb"] == "create"],
        }
    stable = read_audit(audit, namespace, "web")
    return {"template changes": [w["image"] for w in stable if w["verb"] == "patch" and w["image"]]}


def expected_effects(strategy: str, image: str) -> dict[str, list[Any]]:
    return {
        "canary": {"canary weights": ["25", "50", "100"], "stable sizes": [3, 2, 0, 4], "canary created": ["create"]},
        "blueGreen": {"active selector": [["app", "pod-template-hash"], ["app", "rollouts.durable.dev/role"], ["app"]],
                      "preview sizes": [2, 4, 0], "preview created": ["create"]},
        "rollingUpdate": {"template changes": [image]},
        "recreate": {"template changes": [image]},
        "abTest": AB_EFFECTS,
    }[strategy]


def check_effects(audit: Path, strategy: str, namespace: str, image: str, fold_repeats: bool = False) -> None:
    """Every effect once, in order. With `fold_repeats` (API faults that lose answers), an identical
    write repeated back to back counts once: it changed nothing."""
    seen = effects(audit, strategy, namespace)
    if fold_repeats:
        seen = {k: v if k.endswith("created") else _changes(v) for k, v in seen.items()}
    assert seen == expected_effects(strategy, image), f"effects not applied exactly once, in order: {seen}"


def check_final(api: client.ApiClient, namespace: str, image: str, final: RolloutStatus) -> None:
    """Healthy, the Deployment on the new image with all 4 pods ready, nothing of ours left beside it."""
    assert final.phase is Phase.HEALTHY, f"{final.phase.value}: {final.message}"
    apps = client.AppsV1Api(api)
    deployments = apps.list_namespaced_deployment(namespace).items
    assert [d.metadata.name for d in deployments] == ["web"], "no canary or preview left behind"
    web = deployments[0]
    assert web.spec.template.spec.containers[0].image == image
    assert (web.spec.replicas, web.status.ready_replicas, web.status.updated_replicas) == (4, 4, 4)
    selector = client.CoreV1Api(api).read_namespaced_service("web", namespace).spec.selector
    assert selector == {"app": "web"}, f"the Service's own selector: {selector}"
    if final.strategy in ANALYSED:
        scraped = [m for m in final.analysis if m.name == "scraped"]
        assert scraped and len(scraped[0].measurements) == 4, "each measurement counted once"


class Supervisor:
    """Restarts the worker whenever it dies (killed by its plan) until the rollout finishes."""

    def __init__(self, spawn, address: str, queue: str, **options):
        self.spawn, self.address, self.queue, self.options = spawn, address, queue, options
        self.restarts = 0
        self.worker = spawn(address, queue, **options)
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            if self.worker.exited():
                self.restarts += 1
                self.worker = await asyncio.to_thread(self.spawn, self.address, self.queue, **self.options)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@dataclass
class Cell:
    """One cell's record (artifacts/durability/cells.jsonl), written whether it passed or not."""

    strategy: str
    fault: str
    started: float = field(default_factory=time.monotonic)
    figures: dict[str, Any] = field(default_factory=dict)

    def write(self, passed: bool) -> None:
        figures.write("cells", {"strategy": self.strategy, "fault": self.fault, "passed": passed,
                                "seconds": round(time.monotonic() - self.started, 1), **self.figures})
