"""Webhooks (Flagger's types) on the time-skipping server: the real `call_webhook` activity POSTs to a
local HTTP server that answers per path from a script; the cluster is the canary's fake."""

from __future__ import annotations

import concurrent.futures
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from temporalio.worker import Worker

from activities.webhooks import WebhookActivities
from models.spec import parse_rollout
from models.status import Phase, RolloutInput, RolloutStatus
from tests.helpers import canary_document
from tests.test_canary_workflow import FakeCluster
from workflows.canary import CanaryRollout


class HookServer:
    """Answers POST /<name> with the next code of its script (the last repeats); keeps every payload."""

    def __init__(self, **scripts: list[int]):
        self.scripts, self.calls = scripts, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                name = self.path.strip("/")
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                count = sum(1 for n, _ in outer.calls if n == name)
                outer.calls.append((name, body))
                script = outer.scripts.get(name, [200])
                self.send_response(script[min(count, len(script) - 1)])
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/{name}"

    def names(self) -> list[str]:
        return [n for n, _ in self.calls]


@pytest.fixture
def hooks():
    servers = []

    def make(**scripts):
        servers.append(HookServer(**scripts))
        return servers[-1]

    yield make
    for s in servers:
        s.server.shutdown()


async def run(env, unique, server: HookServer, hooks: list[dict], steps: list[dict] | None = None):
    document = canary_document(name=f"hooks-{unique}", steps=steps or [{"setWeight": 25}, {"setWeight": 50},
                                                                       {"setWeight": 100}])
    document["spec"]["webhooks"] = [{"name": h["type"].replace("-", ""), "url": server.url(h["type"]),
                                     "interval": "30s", **h} for h in hooks]
    rollout = parse_rollout(document)
    cluster = FakeCluster()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        async with Worker(env.client, task_queue=f"hooks-{unique}", workflows=[CanaryRollout],
                          activities=[*cluster.activities(), WebhookActivities().call_webhook], activity_executor=pool):
            handle = await env.client.start_workflow(CanaryRollout.run, RolloutInput(rollout=rollout),
                                                     id=rollout.rollout_id, task_queue=f"hooks-{unique}")
            final: RolloutStatus = await handle.result()
    return final, cluster


async def test_a_failing_pre_rollout_hook_stops_before_traffic_moves(time_skipping_env, unique, hooks):
    server = hooks(**{"pre-rollout": [500]})
    final, cluster = await run(time_skipping_env, unique, server, [{"type": "pre-rollout"}])
    assert final.phase is Phase.DEGRADED and final.reason == "WebhookFailed"
    assert "pre-rollout webhook prerollout answered 500" in final.message
    assert cluster.calls == ["prepare", "abort"], "no weight was set"


async def test_gates_wait_until_the_hook_says_yes(time_skipping_env, unique, hooks):
    server = hooks(**{"confirm-rollout": [403, 403, 200], "confirm-promotion": [409, 200]})
    final, cluster = await run(time_skipping_env, unique, server,
                               [{"type": "confirm-rollout"}, {"type": "confirm-promotion"}, {"type": "post-rollout"}])
    assert final.phase is Phase.HEALTHY
    assert server.names() == ["confirm-rollout"] * 3 + ["confirm-promotion"] * 2 + ["post-rollout"]
    assert cluster.calls == ["prepare", "weight 25", "weight 50", "weight 100", "promote"]


async def test_a_rollout_hook_failing_at_a_step_rolls_back(time_skipping_env, unique, hooks):
    server = hooks(rollout=[200, 502])
    final, cluster = await run(time_skipping_env, unique, server, [{"type": "rollout"}])
    assert final.phase is Phase.DEGRADED and final.reason == "WebhookFailed"
    assert cluster.calls == ["prepare", "weight 25", "abort"]


async def test_a_rollback_hook_saying_yes_rolls_back(time_skipping_env, unique, hooks):
    server = hooks(rollback=[404, 404, 200])
    final, cluster = await run(time_skipping_env, unique, server, [{"type": "rollback"}],
                               steps=[{"setWeight": 25}, {"pause": {"duration": "1h"}}, {"setWeight": 100}])
    assert final.phase is Phase.DEGRADED and final.reason == "RolloutAborted"
    assert "rollback webhook rollback asked for it" in final.message
    assert cluster.calls == ["prepare", "weight 25", "abort"]
    assert server.names().count("rollback") == 3


async def test_event_hooks_get_every_step_and_the_end_as_json(time_skipping_env, unique, hooks):
    server = hooks()
    final, _ = await run(time_skipping_env, unique, server, [{"type": "event", "metadata": {"team": "payments"}}])
    events = [body["event"] for name, body in server.calls]
    assert events == ["step 1: setWeight", "step 2: setWeight", "step 3: setWeight", "finished Healthy"]
    last = server.calls[-1][1]
    assert last["rolloutId"] == final.rollout_id and last["metadata"] == {"team": "payments"}
    assert last["phase"] == "Healthy" and last["name"] == final.name
