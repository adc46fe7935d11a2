"""Traffic simulator: sends synthetic requests through the cluster's current routing and exports
per-version request counters and latency histograms in Prometheus text format.

Every Service annotated `rollouts.durable.dev/simulated-rps: "N"` gets N requests a second. Each
request goes to one of the Service's ready endpoints (what the real endpoints controller wrote),
picked at random; the endpoint's pod tells the version (image tag), and the image's behaviour
(`localcluster.behaviour`) decides its status code and latency. No packet is sent anywhere.

    python -m localcluster.traffic --kubeconfig FILE --port 9100
"""

from __future__ import annotations

import argparse
import logging
import random
import time

from kubernetes import client, config
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from localcluster.behaviour import Behaviours

ANNOTATION_RPS = "rollouts.durable.dev/simulated-rps"
TICK = 0.25
log = logging.getLogger("traffic-simulator")


class TrafficSimulator:
    def __init__(self, core: client.CoreV1Api, registry: CollectorRegistry, seed: int = 7):
        self.core = core
        self.behaviours = Behaviours(core)
        self.random = random.Random(seed)
        labels = ["namespace", "service", "version", "image"]
        self.requests = Counter(
            "sim_requests", "Simulated requests by the version that served them", labels + ["code"], registry=registry
        )
        self.latency = Histogram(
            "sim_request_duration_seconds", "Simulated request latency", labels, registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
        self.carry: dict[tuple[str, str], float] = {}

    def tick(self, seconds: float) -> None:
        services = self.core.list_service_for_all_namespaces().items
        wanted = {
            (s.metadata.namespace, s.metadata.name): float((s.metadata.annotations or {})[ANNOTATION_RPS])
            for s in services
            if ANNOTATION_RPS in (s.metadata.annotations or {})
        }
        if not wanted:
            return
        images = {
            (p.metadata.namespace, p.metadata.name): p.spec.containers[0].image
            for p in self.core.list_pod_for_all_namespaces().items
        }
        for endpoints in self.core.list_endpoints_for_all_namespaces().items:
            key = (endpoints.metadata.namespace, endpoints.metadata.name)
            if key not in wanted:
                continue
            backends = [
                images.get((a.target_ref.namespace or key[0], a.target_ref.name))
                for subset in endpoints.subsets or []
                for a in subset.addresses or []
                if a.target_ref is not None
            ]
            backends = [image for image in backends if image]
            budget = self.carry.get(key, 0.0) + wanted[key] * seconds
            count, self.carry[key] = int(budget), budget - int(budget)
            if backends:
                self.send(key, backends, count)

    def send(self, key: tuple[str, str], backends: list[str], count: int) -> None:
        for _ in range(count):
            image = self.random.choice(backends)
            behaviour = self.behaviours.for_image(image)
            version = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else "latest"
            code = "500" if self.random.random() < behaviour.error_rate else "200"
            latency = max(0.001, self.random.gauss(behaviour.latency_ms, behaviour.latency_ms * 0.2) / 1000)
            self.requests.labels(key[0], key[1], version, image, code).inc()
            self.latency.labels(key[0], key[1], version, image).observe(latency)

    def run(self) -> None:
        last = time.monotonic()
        while True:
            time.sleep(TICK)
            now = time.monotonic()
            try:
                self.tick(now - last)
            except Exception as error:  # noqa: BLE001 - keep simulating through API hiccups
                log.warning("tick failed: %s", error)
            last = now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    core = client.CoreV1Api(config.new_client_from_config(args.kubeconfig))
    registry = CollectorRegistry()
    simulator = TrafficSimulator(core, registry)
    start_http_server(args.port, addr="127.0.0.1", registry=registry)
    simulator.run()


if __name__ == "__main__":
    main()


def requests_by_version(url: str, namespace: str, service: str) -> dict[str, float]:
    """Scrape the simulator and sum its request counter per version for one Service."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(url, timeout=5).text):
        if family.name != "sim_requests":
            continue
        for sample in family.samples:
            labels = sample.labels
            if sample.name.endswith("_total") and labels["namespace"] == namespace and labels["service"] == service:
                totals[labels["version"]] = totals.get(labels["version"], 0.0) + sample.value
    return totals
