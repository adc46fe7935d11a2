"""The web provider against a local HTTP server: POST with templated headers and body, a JSON path,
a timeout, a 5xx, a missing path — each judged the way the analysis needs (never a silent pass)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from activities.analysis import AnalysisActivities
from models.analysis import MeasureInput, Metric

seen: list[dict] = []


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        seen.append({"path": self.path, "token": self.headers.get("X-Token"), "body": body})
        if self.path == "/slow":
            time.sleep(2)
        code = 503 if self.path == "/broken" else 200
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"checks": [{"name": "db", "ok": True}, {"name": "cache", "ok": False}]}).encode())

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


def measure(url: str, path: str, condition: str, timeout: float = 5):
    metric = Metric.model_validate({
        "name": "smoke", "successCondition": condition,
        "provider": {"web": {"url": url + "/{{args.check}}", "method": "POST", "jsonPath": path,
                             "headers": {"X-Token": "{{args.token}}"}, "body": '{"version": "{{args.version}}"}',
                             "timeoutSeconds": timeout}}})
    args = {"check": "check", "token": "t-123", "version": "1.4.2"}
    return AnalysisActivities().measure(MeasureInput(rollout_id="t", template="smoke", metric=metric, args=args))


def test_post_with_templated_headers_and_body_and_a_json_path(server):
    assert measure(server, "checks.0.ok", "result == True").phase == "Successful"
    assert seen[-1] == {"path": "/check", "token": "t-123", "body": '{"version": "1.4.2"}'}
    failed = measure(server, "checks.1.ok", "result == True")
    assert (failed.phase, failed.value) == ("Failed", "false")


def test_a_missing_path_a_5xx_and_a_timeout_are_errors(server):
    assert measure(server, "checks.7.ok", "result").phase == "Error"
    metric_url_broken = Metric.model_validate({"name": "b", "successCondition": "True",
                                               "provider": {"web": {"url": server + "/broken", "method": "POST"}}})
    answer = AnalysisActivities().measure(MeasureInput(rollout_id="t", template="t", metric=metric_url_broken, args={}))
    assert answer.phase == "Error" and "503" in answer.message
    slow = Metric.model_validate({"name": "s", "successCondition": "True",
                                  "provider": {"web": {"url": server + "/slow", "method": "POST", "timeoutSeconds": 0.5}}})
    answer = AnalysisActivities().measure(MeasureInput(rollout_id="t", template="t", metric=slow, args={}))
    assert answer.phase == "Error" and "ReadTimeout" in answer.message
