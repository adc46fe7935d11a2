"""Traffic simulator: sends synthetic requests through the cluster's current routing and exports
per-version request counters and latency histograms in Prometheus text format.

Every Service, Ingress, Istio VirtualService or Gateway API HTTPRoute annotated
`rollouts.durable.dev/simulated-rps: "N"` gets N requests a second, some carrying the headers or
cookies its `simulated-audience` annotation declares. The router object's live configuration decides
the Service (and any mirror) for each request (`localcluster.routes`); the request goes to one of that
Service's ready endpoints (what the real endpoints controller wrote), picked at random; the pod tells
the version (image tag), and the image's behaviour (`localcluster.behaviour`) decides its status code
and latency. No packet is sent anywhere.

    python -m localcluster.traffic --kubeconfig FILE --port 9100
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client, config
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from localcluster import routes
from localcluster.behaviour import Behaviours

ANNOTATION_RPS = "rollouts.durable.dev/simulated-rps"
# JSON list of who sends requests with what: [{"header": "x-beta", "value": "1", "share": 0.2},
# {"cookie": "canary", "value": "always", "share": 0.1}] (shares of all requests; the rest carry nothing).
ANNOTATION_AUDIENCE = "rollouts.durable.dev/simulated-audience"
TICK = 0.5  # each tick makes up to seven LISTs: at 0.25 s four idle clusters took half of a 2-core machine
IDLE_TICK = 1.0  # while nothing is annotated with a rate: only the four listings that look for one
log = logging.getLogger("traffic-simulator")


class TrafficSimulator:
    def __init__(self, api: client.ApiClient, registry: CollectorRegistry, seed: int = 7):
        self.core = client.CoreV1Api(api)
        self.networking = client.NetworkingV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.behaviours = Behaviours(self.core)
        self.random = random.Random(seed)
        labels = ["namespace", "service", "version", "image", "entry", "shadow"]
        self.requests = Counter(
            "sim_requests", "Simulated requests by the version that served them", labels + ["code"], registry=registry
        )
        self.latency = Histogram(
            "sim_request_duration_seconds", "Simulated request latency", labels, registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
        self.ticks = Counter("sim_ticks", "Ticks done: each lists the routing, then sends the requests it decides",
                             registry=registry)
        self.carry: dict[str, float] = {}
        self._children: dict[tuple, tuple[Any, Any]] = {}

    @staticmethod
    def _items(call: Callable, *args: str) -> list[dict[str, Any]]:
        """A LIST's items as the API's JSON: the client's models cost the simulator most of its CPU."""
        return json.loads(call(*args, _preload_content=False).data).get("items") or []

    def _entries(self) -> list[tuple[str, str, dict, Callable[[dict[str, str]], tuple[str | None, str | None]]]]:
        """(entry, namespace, annotations, resolve) for every object annotated with a simulated rate."""
        entries = []
        for service in self._items(self.core.list_service_for_all_namespaces):
            meta = service["metadata"]
            entries.append((f"service/{meta['name']}", meta["namespace"], routes.annotations(service),
                            lambda headers, name=meta["name"]: (name, None)))
        ingresses = self._items(self.networking.list_ingress_for_all_namespaces)
        for ingress in ingresses:
            marks, meta = routes.annotations(ingress), ingress["metadata"]
            if marks.get(routes.NGINX + "canary") == "true":
                continue  # reached through its stable Ingress
            same_ns = [i for i in ingresses if i["metadata"]["namespace"] == meta["namespace"]]
            entries.append((f"ingress/{meta['name']}", meta["namespace"], marks,
                            lambda h, ingress=ingress, same_ns=same_ns: routes.nginx(ingress, same_ns, h, self.random)))
        for group, plural, kind, resolve in (
            ("networking.istio.io", "virtualservices", "virtualservice", routes.istio),
            ("gateway.networking.k8s.io", "httproutes", "httproute", routes.gateway),
        ):
            try:
                listed = self._items(self.custom.list_cluster_custom_object, group, "v1", plural)
            except client.ApiException:
                continue  # the CRD is not installed
            for obj in listed:
                meta = obj["metadata"]
                entries.append((f"{kind}/{meta['name']}", meta["namespace"], meta.get("annotations") or {},
                                lambda h, obj=obj, resolve=resolve: resolve(obj, h, self.random)))
        return [e for e in entries if ANNOTATION_RPS in e[2]]

    def tick(self, seconds: float) -> bool:
        """One tick: False when nothing is simulated (the next may wait longer)."""
        entries = self._entries()
        if not entries:
            return False
        pods = {(p["metadata"]["namespace"], p["metadata"]["name"]): p
                for p in self._items(self.core.list_pod_for_all_namespaces)}
        backends: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for endpoints in self._items(self.core.list_endpoints_for_all_namespaces):
            ns = endpoints["metadata"]["namespace"]
            ready = [
                pods.get((a["targetRef"].get("namespace") or ns, a["targetRef"]["name"]))
                for subset in endpoints.get("subsets") or []
                for a in subset.get("addresses") or []
                if a.get("targetRef") is not None
            ]
            backends[(ns, endpoints["metadata"]["name"])] = [pod for pod in ready if pod is not None]
        subsets: dict | None = None  # listed only when a route names a subset
        for entry, ns, marks, resolve in entries:
            key = f"{ns}/{entry}"
            budget = self.carry.get(key, 0.0) + float(marks[ANNOTATION_RPS]) * seconds
            count, self.carry[key] = int(budget), budget - int(budget)
            audience = json.loads(marks.get(ANNOTATION_AUDIENCE, "[]"))
            for _ in range(count):
                serve, shadow = resolve(self.headers(audience))
                for target, is_shadow in ((serve, False), (shadow, True)):
                    if not target:
                        continue
                    service, _, subset = target.partition("/")
                    ready = backends.get((ns, service), [])
                    if subset:  # an Istio DestinationRule subset: the host's endpoints with its labels
                        subsets = self._subsets() if subsets is None else subsets
                        wanted = subsets.get((ns, service, subset), {"(no such subset)": ""})
                        ready = [p for p in ready
                                 if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items())]
                    if ready:
                        self.send(ns, service, entry, is_shadow, [p["spec"]["containers"][0]["image"] for p in ready])
        return True

    def _subsets(self) -> dict[tuple[str, str, str], dict[str, str]]:
        """(namespace, host, subset) -> labels, from every Istio DestinationRule."""
        try:
            listed = self._items(self.custom.list_cluster_custom_object, "networking.istio.io", "v1", "destinationrules")
        except client.ApiException:
            return {}
        return {
            (rule["metadata"]["namespace"], routes.short(rule["spec"]["host"]), subset["name"]): subset.get("labels") or {}
            for rule in listed
            for subset in (rule.get("spec") or {}).get("subsets") or []
        }

    def headers(self, audience: list[dict]) -> dict[str, str]:
        """One request's headers: each audience member carries its header or cookie with its `share`."""
        point, headers = self.random.random(), {}
        for member in audience:
            point -= float(member.get("share", 0))
            if point < 0:
                if "cookie" in member:
                    headers["cookie"] = f"{member['cookie']}={member['value']}"
                else:
                    headers[member["header"].lower()] = member["value"]
                break
        return headers

    def send(self, namespace: str, service: str, entry: str, shadow: bool, backends: list[str]) -> None:
        image = self.random.choice(backends)
        behaviour = self.behaviours.for_image(image)
        version = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else "latest"
        code = "500" if self.random.random() < behaviour.error_rate else "200"
        latency = max(0.001, self.random.gauss(behaviour.latency_ms, behaviour.latency_ms * 0.2) / 1000)
        labels = (namespace, service, version, image, entry, "true" if shadow else "false")
        counter, histogram = self._children.get((labels, code)) or self._child(labels, code)
        counter.inc()
        histogram.observe(latency)

    def _child(self, labels: tuple, code: str) -> tuple[Any, Any]:
        """The metrics' children for these labels, looked up once (every request used to)."""
        self._children[(labels, code)] = found = (self.requests.labels(*labels, code), self.latency.labels(*labels))
        return found

    def run(self) -> None:
        last, busy = time.monotonic(), True
        while True:
            time.sleep(TICK if busy else IDLE_TICK)
            now = time.monotonic()
            try:
                busy = self.tick(now - last)
            except Exception as error:  # noqa: BLE001 - keep simulating through API hiccups
                log.warning("tick failed: %s", error)
                busy = True
            self.ticks.inc()
            last = now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    registry = CollectorRegistry()
    simulator = TrafficSimulator(config.new_client_from_config(args.kubeconfig), registry)
    start_http_server(args.port, addr="127.0.0.1", registry=registry)
    simulator.run()


if __name__ == "__main__":
    main()


def _families(url: str) -> list:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    return list(text_string_to_metric_families(httpx.get(url, timeout=5).text))


def ticks_done(url: str) -> int:
    return int(next((s.value for f in _families(url) if f.name == "sim_ticks" for s in f.samples
                     if s.name.endswith("_total")), 0))


def wait_for_fresh_routing(url: str, timeout: float = 30.0) -> None:
    """Return once every request counted from now on was routed by a listing taken after this call.
    A tick lists the routing objects, then sends the requests of the time since the last tick: on a busy
    machine a tick that listed before a routing change can still be sending after it. Once two more
    ticks are done, the one in flight at the call has finished and the next listed after it."""
    start, deadline = ticks_done(url), time.monotonic() + timeout
    while ticks_done(url) < start + 2:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the traffic simulator at {url} did no tick in {timeout:.0f}s")
        time.sleep(0.05)


def request_counts(url: str, namespace: str, service: str = "", entry: str | None = None) -> dict[tuple[str, bool], float]:
    """One scrape of the simulator: its request counter per (version, shadow copy or not), for requests
    one Service served (`service`) or that came in through one entry (`entry`, any service). Real
    requests and shadow copies read together, so their ratio covers the very same interval."""
    counts: dict[tuple[str, bool], float] = {}
    for family in _families(url):
        if family.name != "sim_requests":
            continue
        for sample in family.samples:
            labels = sample.labels
            if not sample.name.endswith("_total") or labels["namespace"] != namespace:
                continue
            if (service and labels["service"] != service) or (entry and labels["entry"] != entry):
                continue
            key = (labels["version"], labels["shadow"] == "true")
            counts[key] = counts.get(key, 0.0) + sample.value
    return counts


def requests_by_version(url: str, namespace: str, service: str, entry: str | None = None,
                        shadow: bool | None = None) -> dict[str, float]:
    """`request_counts` summed per version; `shadow` picks mirrored copies (True) or real requests (False)."""
    totals: dict[str, float] = {}
    for (version, copied), value in request_counts(url, namespace, service, entry).items():
        if shadow is None or copied == shadow:
            totals[version] = totals.get(version, 0.0) + value
    return totals
