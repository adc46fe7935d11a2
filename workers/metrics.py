"""The worker's one Prometheus endpoint: `GET /metrics` answers the deployment metrics (models/metrics.py)
and, after them, what the Temporal SDK's exporter — bound to a loopback port of its own — says at that
moment."""

from __future__ import annotations

import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import generate_latest

from models.metrics import REGISTRY


class MetricsServer:
    """`GET /metrics`: the deployment metrics, then the SDK's (fetched from `sdk_url` at each scrape)."""

    def __init__(self, address: str, port: int, sdk_url: str | None = None):
        self.sdk_url = sdk_url
        self._server = ThreadingHTTPServer((address, port), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="metrics")

    @property
    def started(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def exposition(self) -> bytes:
        text = generate_latest(REGISTRY)
        if self.sdk_url:
            try:
                with urllib.request.urlopen(self.sdk_url, timeout=5) as answer:
                    text += answer.read()
            except OSError:
                text += b"# the Temporal SDK's metrics did not answer\n"
        return text


def _handler(server: MetricsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            if self.path.split("?")[0] not in ("/metrics", "/"):
                self.send_error(404)
                return
            body = server.exposition()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
