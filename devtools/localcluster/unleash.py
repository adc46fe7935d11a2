"""A loopback stand-in for the Unleash server: the calls the flag channel makes and the calls the real
`UnleashClient` SDK makes, nothing else.

Admin API (token `admin_token`): `GET /api/admin/projects/{p}/features/{f}` (the feature with its
environments and strategies), `POST .../environments/{e}/strategies` (add one),
`PUT .../environments/{e}/strategies/{id}` (replace one: like Unleash, the body is the whole strategy —
a field it leaves out, `variants` included, is stored empty, never merged with what was there) and
`PATCH .../environments/{e}/strategies/{id}` (a JSON patch, RFC 6902, as Unleash's `patchesSchema`:
`op` one of add/remove/replace/copy/move — `test` is not in Unleash's enum and is refused; this
stand-in applies add/remove/replace to object members and refuses copy/move, which Unleash accepts:
stricter, the reference being silent on how they meet the strategy schema). Each request, and each
patched result, is checked as Unleash's `createFeatureStrategySchema` / `updateFeatureStrategySchema`
describe it (`name` a string, `parameters` a map of strings, `constraints` and `variants` lists); a bad
one is answered 400 and kept in `refused`.
Client API (token `client_token`, the SDK's url is `<url>/api`): `GET /api/client/features` (the
environment's features; a `disabled: true` strategy is left out, as Unleash does not serve disabled
strategies to SDKs, and a feature whose strategies are all disabled is served disabled — stricter than
an empty list, which SDKs take as on for everyone), `POST /api/client/register`, `POST /api/client/metrics`.
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULTS: dict[str, Any] = {"constraints": [], "parameters": {}, "variants": [], "segments": []}
PATCH_OPS = {"add", "remove", "replace", "copy", "move"}  # Unleash's patchSchema enum


def _patched(strategy: dict, operations: Any) -> tuple[dict | None, str]:
    """The strategy with a JSON patch applied (add/remove/replace on object members), or a problem."""
    if not isinstance(operations, list):
        return None, "body: a list of patch operations"
    result = copy.deepcopy(strategy)
    for operation in operations:
        if not isinstance(operation, dict) or not isinstance(operation.get("path"), str):
            return None, "path: required string"
        if operation.get("op") not in PATCH_OPS:
            return None, f"op: one of {sorted(PATCH_OPS)}"
        if operation["op"] not in ("add", "remove", "replace"):
            return None, f"op {operation['op']}: not applied by the stand-in"
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in operation["path"].split("/")[1:]]
        node = result
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or (operation["op"] != "add" and last not in node):
            return None, f"path {operation['path']}: not there"
        if operation["op"] == "remove":
            del node[last]
        else:
            node[last] = operation.get("value")
    return result, ""


class UnleashStandIn:
    def __init__(self, admin_token: str, client_token: str, environment: str = "production") -> None:
        self.admin_token, self.client_token, self.environment = admin_token, client_token, environment
        self.features: dict[tuple[str, str], dict[str, Any]] = {}  # (project, name) -> feature
        self.calls: list[tuple[str, str]] = []
        self.refused: list[str] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> UnleashStandIn:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_feature(self, name: str, project: str = "default", strategies: list[dict] | None = None,
                    enabled: bool = True) -> None:
        """A feature with one environment (`enabled` or not) holding `strategies` (ids given if missing)."""
        held = [{"id": str(uuid.uuid4()), **DEFAULTS, **s} for s in copy.deepcopy(strategies or [])]
        self.features[(project, name)] = {"name": name, "project": project, "type": "release", "enabled": True,
                                          "environments": [{"name": self.environment, "enabled": enabled,
                                                            "strategies": held}]}

    def strategies(self, name: str, project: str = "default") -> list[dict]:
        return self.features[(project, name)]["environments"][0]["strategies"]

    def rollout(self, name: str, project: str = "default") -> str | None:
        for strategy in self.strategies(name, project):
            if strategy["name"] == "flexibleRollout":
                return strategy["parameters"].get("rollout")
        return None

    @staticmethod
    def _strategy_problem(body: Any) -> str:
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            return "name: required string"
        parameters = body.get("parameters", {})
        if not isinstance(parameters, dict) or not all(isinstance(v, str) for v in parameters.values()):
            return "parameters: a map of strings"
        if not isinstance(body.get("constraints", []), list):
            return "constraints: a list"
        if not isinstance(body.get("variants", []), list):
            return "variants: a list"
        if body["name"] == "flexibleRollout" and not parameters.get("rollout", "").isdigit():
            return "parameters.rollout: a whole percent as a string"
        return ""

    def _admin(self, method: str, parts: list[str], body: Any) -> tuple[int, Any]:
        # parts: api admin projects {p} features {f} [environments {e} strategies [{id}]]
        project, name = parts[3], parts[5]
        feature = self.features.get((project, name))
        if feature is None:
            return 404, {"message": f"no feature {name}"}
        if len(parts) == 6 and method == "GET":
            return 200, feature
        if len(parts) < 9 or parts[6] != "environments" or parts[8] != "strategies":
            return 404, {"message": "not a call the stand-in knows"}
        environment = next((e for e in feature["environments"] if e["name"] == parts[7]), None)
        if environment is None:
            return 404, {"message": f"no environment {parts[7]}"}
        strategy = next((s for s in environment["strategies"] if len(parts) == 10 and s["id"] == parts[9]), None)
        if len(parts) == 10 and strategy is None:
            return 404, {"message": f"no strategy {parts[9]}"}
        problem = ""
        if method == "PATCH" and strategy is not None:
            body, problem = _patched(strategy, body)
        problem = problem or self._strategy_problem(body)
        if problem:
            self.refused.append(problem)
            return 400, {"message": problem}
        if method == "POST" and len(parts) == 9:
            strategy = {"id": str(uuid.uuid4()), **DEFAULTS, **body}
            environment["strategies"].append(strategy)
            return 200, strategy
        if method in ("PUT", "PATCH") and strategy is not None:  # the whole strategy replaced, never merged
            index = environment["strategies"].index(strategy)
            environment["strategies"][index] = {**DEFAULTS, **body, "id": strategy["id"]}
            return 200, environment["strategies"][index]
        return 404, {"message": "not a call the stand-in knows"}

    def _client_features(self) -> dict[str, Any]:
        features = []
        for feature in self.features.values():
            environment = next(e for e in feature["environments"] if e["name"] == self.environment)
            served = [s for s in environment["strategies"] if not s.get("disabled")]
            all_disabled = bool(environment["strategies"]) and not served
            features.append({"name": feature["name"], "type": feature["type"], "project": feature["project"],
                             "enabled": feature["enabled"] and environment["enabled"] and not all_disabled,
                             "strategies": [{"name": s["name"], "parameters": s["parameters"],
                                             "constraints": s["constraints"], "variants": s["variants"]}
                                            for s in served],
                             "variants": [], "impressionData": False})
        return {"version": 2, "features": features}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: Any = None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _serve(self, method: str) -> None:
                path = self.path.split("?")[0]
                parts = [p for p in path.split("/") if p]
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    return self._answer(400, {"message": "not JSON"})
                token = self.headers.get("Authorization", "")
                with stand_in.lock:
                    stand_in.calls.append((method, path))
                    if parts[:2] == ["api", "admin"] and len(parts) >= 6 and parts[2] == "projects":
                        if token != stand_in.admin_token:
                            return self._answer(401, {"message": "Unauthorized"})
                        return self._answer(*stand_in._admin(method, parts, body))
                    if parts[:2] == ["api", "client"]:
                        if token != stand_in.client_token:
                            return self._answer(401, {"message": "Unauthorized"})
                        if method == "GET" and parts[2:] == ["features"]:
                            return self._answer(200, stand_in._client_features())
                        if method == "POST" and parts[2:] in (["register"], ["metrics"]):
                            return self._answer(202)
                    return self._answer(404, {"message": "not a call the stand-in knows"})

            def do_GET(self) -> None:  # noqa: N802
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

            def do_PUT(self) -> None:  # noqa: N802
                self._serve("PUT")

            def do_PATCH(self) -> None:  # noqa: N802
                self._serve("PATCH")

        return Handler
