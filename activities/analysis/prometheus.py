"""Prometheus provider: an instant PromQL query through `prometheus-api-client`. A scalar answers a
number, a vector a list of numbers (`result[0]`); an empty vector or NaN is `EmptyResult`, which the
metric's `emptyResult` policy turns into Inconclusive, Failed or Error. A query Prometheus rejects
(bad PromQL) is a non-retryable error carrying Prometheus' own message; an unreachable server is an
Error measurement (counted against `consecutiveErrorLimit`)."""

from __future__ import annotations

import math
import threading
from typing import Any

from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from requests.exceptions import RequestException
from temporalio.exceptions import ApplicationError

from activities.analysis import EmptyResult
from models.analysis import Metric, fill

QUERY_TIMEOUT = 10  # seconds per HTTP request (the client retries 5xx a few times within the measurement)


class PrometheusClients:
    """One `PrometheusConnect` per server address, built on first use and shared by the measurements;
    `default_address` is the worker's Prometheus (PROMETHEUS_URL) for metrics that name none."""

    def __init__(self, default_address: str = "", timeout: float = QUERY_TIMEOUT):
        self.default_address, self.timeout = default_address, timeout
        self._clients: dict[str, PrometheusConnect] = {}
        self._lock = threading.Lock()

    def address(self, metric: Metric, given: str | None) -> str:
        address = given or self.default_address
        if not address:
            raise ApplicationError(f"metric {metric.name}: no Prometheus address (provider's address or "
                                   "the worker's PROMETHEUS_URL)", type="Invalid", non_retryable=True)
        return address

    def connect(self, address: str) -> PrometheusConnect:
        with self._lock:
            if address not in self._clients:
                self._clients[address] = PrometheusConnect(url=address, disable_ssl=True, timeout=self.timeout)
            return self._clients[address]


class PrometheusProvider:
    def __init__(self, prometheus: PrometheusClients):
        self.prometheus = prometheus

    def measure(self, metric: Metric, args: dict[str, str]) -> tuple[Any, str]:
        config = metric.provider.prometheus
        address = self.prometheus.address(metric, config.address)
        query = fill(config.query, args)
        try:
            answer = self.prometheus.connect(address).custom_query(query)
        except PrometheusApiClientException as error:
            text = str(error)
            if "400" in text or "bad_data" in text or "parse error" in text:
                raise ApplicationError(f"metric {metric.name}: Prometheus rejected the query: {text}",
                                       type="Invalid", non_retryable=True) from None
            raise ApplicationError(f"metric {metric.name}: Prometheus {address}: {text}", type="Unavailable") from None
        except RequestException as error:
            raise ApplicationError(f"metric {metric.name}: Prometheus {address} unreachable: "
                                   f"{type(error).__name__}", type="Unavailable") from None
        return _result(answer, query), query


def _result(answer: Any, query: str) -> Any:
    if isinstance(answer, list) and answer and isinstance(answer[0], dict):  # a vector
        values = [float(sample["value"][1]) for sample in answer]
    elif isinstance(answer, list) and len(answer) == 2 and not isinstance(answer[0], dict):  # scalar [t, "v"]
        values = [float(answer[1])]
    else:
        values = []
    if not values or any(math.isnan(v) for v in values):
        raise EmptyResult("empty result" if not values else "NaN in the result", query)
    return values
