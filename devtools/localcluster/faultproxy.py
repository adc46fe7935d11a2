"""A loopback proxy that injects faults between the engine and a real server: the kube-apiserver (TLS,
with the cluster's own certificate) or Prometheus (plain HTTP). Everything else passes through.

Faults, each chosen at random for `rate` of the requests (seeded, so a run can be repeated), or — with
`every=n` — the first request that can take one and every n-th after it, the first of them a fault
that fails the request (not `slow`), then the kinds in turn (so a short run still meets a failure: a
seeded 20 % of a cell's few requests can be none). Only requests under `paths`, never a watch, count:
`eligible` says how many did.
- `error`: 500 with a Kubernetes Status body, the request never forwarded;
- `conflict`: 409 Conflict ("the object has been modified") on a PUT/PATCH, never forwarded;
- `denied`: 403 from an admission webhook on a write (a permanent fault: the engine must not retry it);
- `throttle`: 429 with `Retry-After: 1`, never forwarded;
- `slow`: forwarded after `slow_seconds`;
- `drop`: the connection closed without an answer, never forwarded;
- `lost`: forwarded (the server applied it) and the connection closed before the answer — the client
  cannot know whether its write happened;
- Prometheus answers: `unavailable` (503), `empty` (a success with no series), `nan` (a NaN sample).

`with proxy.faults(rate=1.0, kinds=["unavailable"], limit=None):` changes the faults for a while (at most
`limit` of them); `counts` says
how many requests passed and how many faults of each kind were injected.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

KUBERNETES_FAULTS = ("error", "conflict", "throttle", "slow", "drop", "lost")
PROMETHEUS_FAULTS = ("unavailable", "empty", "nan")
_WRITES_ONLY = {"conflict": ("PUT", "PATCH"), "denied": ("POST", "PUT", "PATCH")}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "upgrade"}


def _status(code: int, reason: str, message: str) -> bytes:
    return json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                       "reason": reason, "code": code}).encode()


def _vector(value: str) -> bytes:
    result = [{"metric": {}, "value": [time.time(), value]}] if value else []
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()


# kind -> (status, extra headers, body) for the faults answered by the proxy itself
_ANSWERS = {
    "error": (500, {}, _status(500, "InternalError", "injected: etcdserver: request timed out")),
    "conflict": (409, {}, _status(409, "Conflict", "injected: the object has been modified; please apply your "
                                                   "changes to the latest version and try again")),
    "denied": (403, {}, _status(403, "Forbidden", 'admission webhook "policy.example.com" denied the request: '
                                                  "injected: images must come from the approved registry")),
    "throttle": (429, {"Retry-After": "1"}, _status(429, "TooManyRequests", "injected: too many requests")),
    "unavailable": (503, {}, b"injected: service unavailable"),
    "empty": (200, {}, _vector("")),
    "nan": (200, {}, _vector("NaN")),
}


class FaultProxy:
    def __init__(self, upstream: str, *, rate: float = 0.0, kinds: Sequence[str] = KUBERNETES_FAULTS,
                 seed: int = 1, slow_seconds: float = 1.5, tls: tuple[Path, Path] | None = None,
                 cafile: Path | None = None, paths: str = "/", every: int | None = None):
        """`upstream` like https://127.0.0.1:6443; `tls` = (cert, key) to serve HTTPS; `cafile` to trust
        the upstream; only requests whose path starts with `paths` get faults; `every` replaces `rate`
        by a fixed count (every n-th eligible request faulted, the kinds in turn from `seed`)."""
        self.upstream = urlsplit(upstream)
        if every is not None:
            if every < 1:
                raise ValueError(f"every: {every} (a count of requests, at least 1)")
            rate = 1 / every
        self.rate, self.kinds, self.slow_seconds, self.paths = rate, tuple(kinds), slow_seconds, paths
        self.every, self.eligible, self._turn = every, 0, seed
        self.counts: Counter[str] = Counter()
        self.limit: int | None = None
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._upstream_tls = ssl.create_default_context(cafile=str(cafile)) if cafile else None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._scheme = "https" if tls else "http"

    @property
    def url(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        threading.Thread(target=self._server.serve_forever, daemon=True, name="fault-proxy").start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @contextlib.contextmanager
    def faults(self, rate: float, kinds: Sequence[str] | None = None, limit: int | None = None) -> Iterator[FaultProxy]:
        before = (self.rate, self.kinds, self.limit, self.every)
        self.rate, self.kinds, self.limit, self.every = rate, tuple(kinds or self.kinds), limit, None
        try:
            yield self
        finally:
            self.rate, self.kinds, self.limit, self.every = before

    @property
    def injected(self) -> int:
        return sum(n for kind, n in self.counts.items() if kind != "passed")

    def choose(self, method: str, path: str) -> str | None:
        with self._lock:
            if not path.startswith(self.paths) or "watch=true" in path or self.limit == 0:
                return None
            kinds = [k for k in self.kinds if method in _WRITES_ONLY.get(k, (method,))]
            if not kinds:
                return None
            if self.every is not None:
                self.eligible += 1
                if (self.eligible - 1) % self.every:
                    return None
                failing = [k for k in kinds if k != "slow"] if self.eligible == 1 else []
                kind = failing[self._turn % len(failing)] if failing else kinds[self._turn % len(kinds)]
                self._turn += 1
            elif self._random.random() >= self.rate:
                return None
            else:
                kind = self._random.choice(kinds)
            if self.limit is not None:
                self.limit -= 1
            return kind

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes | None):
        u = self.upstream
        if u.scheme == "https":
            connection = http.client.HTTPSConnection(u.hostname, u.port, context=self._upstream_tls, timeout=60)
        else:
            connection = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            fault = proxy.choose(self.command, self.path)
            with proxy._lock:
                proxy.counts[fault or "passed"] += 1
            if fault in _ANSWERS:
                status, extra, payload = _ANSWERS[fault]
                return self._answer(status, {"Content-Type": "application/json", **extra}, payload)
            if fault == "drop":
                return self._drop()
            if fault == "slow":
                time.sleep(proxy.slow_seconds)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP and k.lower() != "host"}
            try:
                status, response_headers, payload = proxy.forward(self.command, self.path, headers, body)
            except OSError:
                return self._drop()
            if fault == "lost":
                return self._drop()
            self._answer(status, {k: v for k, v in response_headers if k.lower() not in _HOP_BY_HOP}, payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any  # noqa: N815

        def _answer(self, status: int, headers: dict[str, str], payload: bytes) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _drop(self) -> None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

        def log_message(self, *args) -> None:
            pass

    return Handler
