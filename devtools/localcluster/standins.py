"""Loopback stand-ins for the services an example calls that the demo machine does not have: the
webhook endpoints and notification channels an example names (`http://change-calendar.internal/...`).
The demo's worker reaches them through this server as its HTTP proxy (`HTTP_PROXY`, loopback and the
cluster excepted by `NO_PROXY`), so nothing leaves the machine: every request is answered here with
200 `{"ok": true}` and counted by host."""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class StandIns:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="stand-ins")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> StandIns:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def proxy_env(self) -> dict[str, str]:
        """The worker's environment: plain-HTTP calls go through the stand-ins, loopback does not."""
        return {"HTTP_PROXY": self.url, "http_proxy": self.url,
                "NO_PROXY": "localhost,127.0.0.1,::1", "no_proxy": "localhost,127.0.0.1,::1"}


def _handler(standins: StandIns) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            standins.calls[urlsplit(self.path).hostname or self.headers.get("Host", "?")] += 1
            body = json.dumps({"ok": True}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = _answer  # noqa: N815 - http.server's names

        def log_message(self, *args) -> None:
            pass

    return Handler
