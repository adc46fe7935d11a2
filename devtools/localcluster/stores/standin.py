"""The frame every store stand-in shares: a loopback HTTP server whose subclass implements the store's
calls as a state machine; bearer tokens it issued (and can revoke, so the next call meets a real 401);
faults injected on request (`inject(429, retry_after=2)` answers the next matching calls with that
status); every request recorded, and every contract violation kept (`violations`, asserted empty by
the tests) as well as answered with the store's 400.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list → JSON, bytes as they are, None → empty
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


@dataclass
class Fault:
    status: int
    times: int
    match: str
    retry_after: str | None


class StandIn:
    """Subclasses implement `handle(request) -> Reply` (the store's calls) and `error(status, message)`
    (the store's error body)."""

    name = "store"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.requests: list[Request] = []
        self.violations: list[str] = []
        self.faults: list[Fault] = []
        self.tokens: set[str] = set()
        self.revoked = 0
        self._server: ThreadingHTTPServer | None = None
        self.tls = None  # an ssl.SSLContext: serve HTTPS (devtools/localcluster/stores/tls.py)

    # ---- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> str:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Request(self.command, parts.path, parts.query,
                                  {k.lower(): v for k, v in self.headers.items()}, body)
                reply = standin.dispatch(request)
                payload = reply.body if isinstance(reply.body, bytes) else (
                    b"" if reply.body is None else json.dumps(reply.body).encode())
                self.send_response(reply.status)
                headers = {"content-type": "application/json", **reply.headers} if payload else reply.headers
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True, name=f"{self.name}-standin").start()
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> StandIn:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- faults and tokens ----------------------------------------------------------------------------

    def inject(self, status: int, times: int = 1, match: str = "", retry_after: float | None = None) -> None:
        """The next `times` requests whose path contains `match` are answered with `status`."""
        with self.lock:
            self.faults.append(Fault(status, times, match, None if retry_after is None else f"{retry_after:g}"))

    def revoke_tokens(self) -> None:
        """Every issued token stops working: the next call meets a 401 and must sign in again."""
        with self.lock:
            self.tokens.clear()
            self.revoked += 1

    def issue_token(self) -> str:
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.tokens.add(token)
        return token

    def authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        with self.lock:
            return header.startswith("Bearer ") and header[7:] in self.tokens

    def calls(self, contains: str = "", method: str | None = None) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if contains in r.path and (method is None or r.method == method)]

    # ---- dispatch -------------------------------------------------------------------------------------

    def dispatch(self, request: Request) -> Reply:
        with self.lock:
            self.requests.append(request)
            for fault in self.faults:
                if fault.times > 0 and fault.match in request.path:
                    fault.times -= 1
                    headers = {"retry-after": fault.retry_after} if fault.retry_after else {}
                    return Reply(fault.status, self.error(fault.status, "injected fault"), headers)
            try:
                return self.handle(request)
            except Violation as violation:
                self.violations.append(str(violation))
                return Reply(400, self.error(400, str(violation)))
            except Refusal as refusal:
                return Reply(refusal.status, self.error(refusal.status, refusal.message))

    def handle(self, request: Request) -> Reply:
        raise NotImplementedError

    def checked(self, contract: Any, request: Request, authorize, route) -> Reply:
        """`route(request)` between an OpenAPI contract's checks (devtools/localcluster/stores/contracts.py): the
        request before (a violation is refused), `authorize(request)`, the answer after (kept)."""
        try:
            contract.check_request(request.method, request.path, request.query, request.body,
                                   request.content_type, request.headers)
        except ValueError as error:  # ContractError
            raise Violation(str(error)) from None
        authorize(request)
        reply = route(request)
        if reply.status < 300 and reply.body is not None:
            try:
                contract.check_response(request.method, request.path, request.query, reply.status,
                                        json.dumps(reply.body).encode())
            except ValueError as error:
                self.violations.append(str(error))
        return reply

    def error(self, status: int, message: str) -> Any:
        return {"error": {"code": status, "message": message}}


class Violation(Exception):
    """A request the official description does not allow (kept in `violations`)."""


class Refusal(Exception):
    """A valid request the store's state machine refuses (a halted release completed, a duplicate upload)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message
