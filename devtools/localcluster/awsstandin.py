"""moto's server for ECS, ELBv2 and CloudWatch, made stricter than the services and able to tell what was
asked of it. Tests, the demo and `rollout dev` use it; never the product.

- **Call log**: every request's service, region, action and parameters (ECS's JSON, ELBv2's query form
  decoded into nested values), in order — as the kube-apiserver's audit log is used for Kubernetes.
- **Validation moto skips** (docs/research/ecs-on-moto.md §"Gaps"), answered with the error the real API
  names (400, the service's own error format): task sets only on EXTERNAL services, a scale of 0-100
  PERCENT, a load balancer entry naming an existing `ip` target group and a container and port of the
  task definition, `clientToken` up to 36 printable ASCII characters, launchType and
  capacityProviderStrategy not both; UpdateService on an EXTERNAL service only with what the reference
  allows there; an unknown task set is TaskSetNotFoundException (moto: a 500 or ClientException); the ALB's
  forward actions with 1-5 target groups that exist, weights 0-999, rule priorities 1-50000, at most 5
  condition values per rule, header names up to 40 and values up to 128 characters.
- **Stricter than the service, where moto would crash or answer wrong**: awsvpc task sets must name their
  security groups (real ECS takes the VPC's default group; moto answers 500), and
  UpdateServicePrimaryTaskSet takes the task set's ARN only (the reference allows its ID too; moto then
  silently marks nothing primary).
- **Not as strict as the services** (known): a deleted task set is gone at once (ECS keeps it DRAINING
  while its targets deregister; the product ignores DRAINING ones, untested here), `clientToken` reuse is
  not checked, nor an `authenticate-oidc` action resent without its secret.

The task sets' tasks, their targets and their traffic are the controller's (localcluster/ecscontroller.py)."""

from __future__ import annotations

import io
import json
import logging
import re
import threading
from typing import Any
from urllib.parse import parse_qsl

from moto.server import ThreadedMotoServer

from localcluster import metricmath
from localcluster.awsrules import ACCOUNT, OBSERVER_KEY, Call, problem_with  # noqa: F401 - ACCOUNT: part of this module's names

ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_ECS", "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2", "AWS_ENDPOINT_URL_CLOUDWATCH")
_SCOPE = re.compile(r"Credential=(?P<key>[^/]+)/\d{8}/(?P<region>[a-z0-9-]+)/(?P<service>[a-z0-9-]+)/aws4_request")


class AwsStandIn(ThreadedMotoServer):
    """ThreadedMotoServer on loopback whose WSGI app validates and records every call first."""

    def __init__(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        super().__init__(ip_address="127.0.0.1", port=0, verbose=False)
        self.log: list[Call] = []
        self._lock = threading.Lock()
        self.url = ""

    def start(self) -> AwsStandIn:  # type: ignore[override]
        super().start()
        host, port = self.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self

    def _server_entry(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(self._ip_address, self._port, self._wrap(app), True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()

    def environment(self) -> dict[str, str]:
        """What a worker process needs to reach this stand-in (boto3's own variables)."""
        return {**{name: self.url for name in ENDPOINT_VARIABLES}, "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "NO_PROXY": "127.0.0.1,localhost"}

    def calls(self, action: str | None = None, **where: str) -> list[Call]:
        """The calls made so far (one action's), whose parameters contain every `where` value as text."""
        with self._lock:
            found = list(self.log)
        return [c for c in found if (action is None or c.action == action)
                and all(value in json.dumps(c.params) for value in where.values())]

    def _wrap(self, app):
        def recorded(environ, start_response):
            size = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(size) if size else b""
            environ["wsgi.input"] = io.BytesIO(body)
            call = _parse(environ, body)
            if call is not None:
                with self._lock:
                    self.log.append(call)
                problem = problem_with(call)
                if problem is not None:
                    return _refuse(call, *problem, start_response)
                if call.action == "GetMetricData" and any("Expression" in q for q in call.params["MetricDataQueries"]):
                    output = metricmath.answer(call, self.url)
                    return _reply(json.dumps(output, default=lambda t: t.timestamp()).encode(),
                                  "application/x-amz-json-1.0", start_response)
            return app(environ, start_response)

        return recorded


def _parse(environ: dict[str, Any], body: bytes) -> Call | None:
    scope = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if scope is None or scope["key"] == OBSERVER_KEY:
        return None
    service, region = scope["service"], scope["region"]
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if service in ("ecs", "monitoring") and target:  # awsJson (CloudWatch: awsJson1_0, which botocore chooses)
        return Call(service, region, target.rsplit(".", 1)[-1], json.loads(body or b"{}"), protocol="json")
    if service == "elasticloadbalancing":
        form = dict(parse_qsl(body.decode()))
        return Call(service, region, form.pop("Action", ""), unflatten(form))

    return None


def unflatten(form: dict[str, str]) -> dict[str, Any]:
    """The query protocol's `A.member.1.B=x` as {"A": [{"B": "x"}]}."""
    root: dict[str, Any] = {}
    for key, value in sorted(form.items(), key=lambda kv: [int(p) if p.isdigit() else p for p in kv[0].split(".")]):
        parts = [p for p in key.split(".") if p != "member"]
        node: Any = root
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            following = parts[index + 1] if not last else ""
            if part.isdigit():
                position = int(part) - 1
                while len(node) <= position:
                    node.append({} if not following.isdigit() else [])
                if last:
                    node[position] = value
                else:
                    node = node[position]
            elif last:
                node[part] = value
            else:
                node = node.setdefault(part, [] if following.isdigit() else {})
    return root


def _refuse(call: Call, code: str, message: str, start_response):
    if call.protocol == "json":
        body = json.dumps({"__type": code, "message": message}).encode()
        content = "application/x-amz-json-1.1" if call.service == "ecs" else "application/x-amz-json-1.0"
    else:
        body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{_xml(message)}</Message>"
                "</Error><RequestId>stand-in</RequestId></ErrorResponse>").encode()
        content = "text/xml"
    start_response("400 Bad Request", [("Content-Type", content), ("Content-Length", str(len(body)))])
    return [body]


def _reply(body: bytes, content: str, start_response, headers: list | None = None):
    start_response("200 OK", [("Content-Type", content), ("Content-Length", str(len(body))), *(headers or [])])
    return [body]


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
