"""What a test sees of a workload in the real cluster: Deployments `web` and `web-canary`, the images
behind Service `web`'s endpoints, pods left terminating, and who the simulated traffic reaches."""

from __future__ import annotations

import asyncio
import threading
import time

from kubernetes import client

from localcluster.traffic import request_counts, wait_for_fresh_routing
from tests.helpers import eventually


def view(api: client.ApiClient, namespace: str) -> dict:
    """Replicas and ready pods of stable and canary, and the images behind Service `web`'s endpoints."""
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    result = {}
    for role, name in (("stable", "web"), ("canary", "web-canary")):
        try:
            d = apps.read_namespaced_deployment(name, namespace)
            result[role] = (d.spec.replicas, d.status.ready_replicas or 0, d.spec.template.spec.containers[0].image)
        except client.ApiException as error:
            assert error.status == 404
            result[role] = None
    listed = core.list_namespaced_pod(namespace).items
    result["terminating"] = sum(1 for p in listed if p.metadata.deletion_timestamp is not None)
    result["endpoints"] = service_images(api, namespace, "web")
    return result


async def expect_view(api, namespace, stable, canary, endpoints) -> dict:
    async def check():
        v = view(api, namespace)
        want = (stable, canary, sorted(endpoints), 0)  # and no pod left terminating
        return v if (v["stable"], v["canary"], v["endpoints"], v["terminating"]) == want else None

    try:
        return await eventually(check, timeout=30, what="cluster state")
    except AssertionError:
        raise AssertionError(f"want {stable}, {canary}, {endpoints}; have {view(api, namespace)}") from None



class EndpointSampler:
    """Samples the images behind Service `web`'s ready endpoints in a thread, while a rollout runs."""

    def __init__(self, api: client.ApiClient, namespace: str, interval: float = 0.05):
        self.api, self.namespace, self.interval = api, namespace, interval
        self.samples: list[list[str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> EndpointSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(view(self.api, self.namespace)["endpoints"])
            time.sleep(self.interval)


def service_images(api: client.ApiClient, namespace: str, service: str) -> list[str]:
    """The images of the pods behind a Service's ready endpoints, sorted."""
    core = client.CoreV1Api(api)
    pods = {p.metadata.name: p.spec.containers[0].image for p in core.list_namespaced_pod(namespace).items}
    endpoints = core.read_namespaced_endpoints(service, namespace)
    return sorted(pods.get(a.target_ref.name, "?") for s in endpoints.subsets or [] for a in s.addresses or [])


def pod_names(api: client.ApiClient, namespace: str, deployment: str) -> set[str]:
    """Names of the live (not terminating) pods of one Deployment's current and old ReplicaSets."""
    core = client.CoreV1Api(api)
    prefix = f"{deployment}-"
    return {
        p.metadata.name
        for p in core.list_namespaced_pod(namespace).items
        if p.metadata.deletion_timestamp is None and p.metadata.owner_references
        and p.metadata.owner_references[0].name.rsplit("-", 1)[0] == deployment
        and p.metadata.name.startswith(prefix)
    }


async def traffic_share(url: str, namespace: str, version: str, entry: str | None = None, service: str = "",
                        seconds: float = 4.0) -> tuple[float, float]:
    """(share of real requests the version served, shadow copies per real request) over at least
    `seconds`, of the requests that came in through `entry` or that `service` served. Each end of the
    interval is one scrape (real requests and copies counted over the same interval), the first once the
    simulator routes by what the objects say now, the second once the ticks in flight have sent their
    requests. A tick sends the requests of the time since the one before at once, and late in the suite
    (a cluster full of earlier tests' objects to list) a tick can take longer than a short interval: CI
    saw no request at all in 2 s. So the routing must not change for a while after `seconds`: measure
    during a pause that only a decision ends."""
    await asyncio.to_thread(wait_for_fresh_routing, url)
    before = request_counts(url, namespace, service, entry)
    await asyncio.sleep(seconds)
    await asyncio.to_thread(wait_for_fresh_routing, url)
    after = request_counts(url, namespace, service, entry)
    delta = {key: value - before.get(key, 0.0) for key, value in after.items()}
    total = sum(v for (_, copied), v in delta.items() if not copied)
    assert total > 300, f"too little simulated traffic through {entry or service}: {total}"
    served = sum(v for (ver, copied), v in delta.items() if ver == version and not copied)
    return served / total, sum(v for (_, copied), v in delta.items() if copied) / total
