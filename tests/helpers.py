"""Small builders shared by tests: rollout documents and polling."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from models.spec import Rollout, parse_rollout


def canary_document(
    name: str = "checkout-api",
    environment: str = "test",
    namespace: str = "shop",
    deployment: str = "checkout-api",
    image: str = "registry.local/checkout-api:1.4.2",
    steps: list[dict[str, Any]] | None = None,
    context: str = "local",
    progress_deadline_seconds: int = 120,
    strategy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Rollout document; a canary over `steps` unless `strategy` gives another strategy block."""
    if steps is None:
        steps = [{"setWeight": 20}, {"pause": {"duration": "30s"}}, {"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]
    return {
        "apiVersion": "rollouts.durable.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "environment": environment},
        "spec": {
            "target": {"kubernetes": {"context": context, "namespace": namespace, "deployment": deployment}},
            "image": image,
            "progressDeadlineSeconds": progress_deadline_seconds,
            "strategy": strategy or {
                "canary": {
                    "stableService": deployment,
                    "canaryService": f"{deployment}-canary",
                    "trafficRouting": {"replicas": {}},
                    "steps": steps,
                }
            },
        },
    }


_ELB = "arn:aws:elasticloadbalancing:us-east-1:123456789012:{}"
# An ECS target as a document writes it (no service behind it: for validation and recorded histories).
ECS_TARGET = {"region": "us-east-1", "cluster": "shop", "service": "checkout", "container": "web",
              "network": {"subnets": ["subnet-0123456789abcdef0"], "securityGroups": ["sg-0123456789abcdef0"]},
              "loadBalancer": {"listener": _ELB.format("listener/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2"),
                               "testListener": _ELB.format("listener/app/shop/50dc6c495c0c9188/9d1f0e7a4b3c2d10"),
                               "targetGroups": [_ELB.format("targetgroup/checkout-a/1"),
                                                _ELB.format("targetgroup/checkout-b/2")],
                               "containerPort": 8080}}


def ecs_document(name: str, target: dict[str, Any], image: str, steps: list[dict[str, Any]] | None = None,
                 deadline: int = 60) -> dict[str, Any]:
    """A Rollout document for an ECS target: a canary over `steps` (default: 20 %, then an open pause)."""
    return {"apiVersion": "rollouts.durable.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": name, "environment": "test"},
            "spec": {"target": {"ecs": target}, "image": image, "progressDeadlineSeconds": deadline,
                     "strategy": {"canary": {"steps": steps or [{"setWeight": 20}, {"pause": {}}]}}}}


def canary_rollout(**kwargs: Any) -> Rollout:
    return parse_rollout(canary_document(**kwargs))


def prometheus_value(url: str, query: str) -> float | None:
    """The first value of `query` on the Prometheus at `url` (None: no data); its own error raised."""
    import httpx

    answer = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=5).json()
    if answer.get("status") != "success":
        raise AssertionError(f"Prometheus refused {query}: {answer.get('error')}")
    result = answer["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def scraped(url: str, query: str, above: float | None = None, timeout: float = 60) -> None:
    """Until Prometheus at `url` has data for `query` (above `above`, if given): what a test needs scraped."""
    import httpx

    deadline, value = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            value = prometheus_value(url, query)
        except httpx.TransportError:
            value = None  # not serving yet
        if value is not None and (above is None or value > above):
            return
        time.sleep(0.3)
    raise AssertionError(f"Prometheus at {url} never had {query}{'' if above is None else f' above {above}'} "
                         f"within {timeout}s (last {value})")


async def skip_time(env, duration: timedelta, parts: int = 12) -> None:
    """`env.sleep(duration)` on the time-skipping server, in `parts` calls. Each call is one RPC, which the
    SDK's core gives 30 s (its deadline for calls that are not long polls), and the real time a call takes
    is the work inside it: an hour of a background analysis every 5 s took about 10 s in one call on an
    idle machine and over 30 s on a busy one (the call failed, and time skipping stayed locked for the
    module's next tests)."""
    for _ in range(parts):
        await env.sleep(duration / parts)


async def _timers(client, workflow_id: str) -> dict[str, tuple[Any, Any, str]]:
    """Per timer of the workflow's latest run: (due, when it ended or None, "fired"/"cancelled"/"")."""
    from temporalio.api.enums.v1 import EventType

    history = await client.get_workflow_handle(workflow_id).fetch_history()
    timers: dict[str, tuple[Any, Any, str]] = {}
    for event in history.events:
        at = event.event_time.ToDatetime()
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            started = event.timer_started_event_attributes
            timers[started.timer_id] = (at + started.start_to_fire_timeout.ToTimedelta(), None, "")
        elif event.event_type == EventType.EVENT_TYPE_TIMER_FIRED:
            timer = event.timer_fired_event_attributes.timer_id
            timers[timer] = (timers[timer][0], at, "fired")
        elif event.event_type == EventType.EVENT_TYPE_TIMER_CANCELED:
            timer = event.timer_canceled_event_attributes.timer_id
            timers[timer] = (timers[timer][0], at, "cancelled")
    return timers


async def cancel_margin(client, workflow_id: str) -> timedelta:
    """The least time any timer the workflow's latest run cancelled still had to run when it was cancelled
    (a day when none was). On the time-skipping server a workflow task that cancels a timer which fired
    while the task was at the worker is refused and never sent again (temporalio/sdk-java#3088): the run is
    stranded. Tests whose timers would line up (a pause a whole number of analysis intervals long) assert
    a margin, so a change of durations fails at once instead of now and then under load."""
    timers = await _timers(client, workflow_id)
    return min((due - ended for due, ended, how in timers.values() if how == "cancelled"), default=timedelta(days=1))


async def clear_of_timers(env, workflow_id: str, margin: timedelta = timedelta(seconds=2)) -> None:
    """Before a decision that ends a wait with short timers beside it (a background analysis every few
    seconds): until no open timer of the latest run is due within `margin`. Between skips the test server's
    clock runs at real pace, so a timer due just after the decision could fire while the task cancelling it
    is at the worker — the stranded run `cancel_margin` describes."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = (await env.get_current_time()).replace(tzinfo=None)
        soonest = min((due - now for due, _, how in (await _timers(env.client, workflow_id)).values() if not how),
                      default=margin)
        if soonest >= margin:
            return
        await asyncio.sleep(max(soonest.total_seconds(), 0) + 0.1)
    raise AssertionError(f"{workflow_id} kept a timer due within {margin} for 30 s")


async def eventually(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2, what: str = "") -> Any:
    """Await `check()` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}; last value {last!r}")


async def paused_at(handle, step: int, timeout: float = 60.0):
    """Wait until the rollout is Paused at `step` (0-based) and return its status."""
    from models.status import Phase, RolloutStatus

    async def check():
        s = await handle.query("status", result_type=RolloutStatus)
        return s if s.phase is Phase.PAUSED and s.current_step == step else None

    return await eventually(check, timeout=timeout, what=f"paused at step {step}")


async def with_reason(handle, reason: str, timeout: float = 60.0):
    """Wait until the rollout's status gives `reason` (e.g. PausedByUser: held at a step boundary) and
    return the status."""
    from models.status import RolloutStatus

    async def check():
        s = await handle.query("status", result_type=RolloutStatus)
        return s if s.reason == reason else None

    return await eventually(check, timeout=timeout, what=reason)


def read_audit(path, namespace: str, name: str, resource: str = "deployments") -> list[dict[str, Any]]:
    """The engine's writes to one object (a Deployment unless `resource` says otherwise), in order,
    from the kube-apiserver audit log.

    Dry runs are left out (they change nothing). Each row: verb, the replicas and weight/step annotations the request set (None where it did not),
    the image, a Service's selector, and the whole request body.
    """
    import json

    rows = []
    with open(path) as log:
        for line in log:
            event = json.loads(line)
            ref = event.get("objectRef", {})
            if event.get("stage") != "ResponseComplete" or ref.get("resource") != resource:
                continue
            if ref.get("namespace") != namespace or ref.get("name") != name or ref.get("subresource"):
                continue
            if event.get("responseStatus", {}).get("code", 200) >= 300:
                continue
            if "dryRun=" in event.get("requestURI", ""):  # a server-side dry run stores nothing
                continue
            body = event.get("requestObject") or {}
            if isinstance(body, list):  # a JSON patch: the operations, read as the object they write
                body = _patched(body)
            annotations = (body.get("metadata") or {}).get("annotations") or {}
            rows.append({
                "verb": event["verb"],
                "replicas": (body.get("spec") or {}).get("replicas"),
                "weight": annotations.get("rollouts.durable.dev/weight"),
                "step": annotations.get("rollouts.durable.dev/step"),
                "image": _image_of(body),
                "selector": (body.get("spec") or {}).get("selector") if resource == "services" else None,
                "body": body,
                "at": event["requestReceivedTimestamp"],
            })
    return rows


def _patched(operations: list[dict[str, Any]]) -> dict[str, Any]:
    """What a JSON patch sets, as a partial object: a whole pod template, or a container's image."""
    body: dict[str, Any] = {}
    for op in operations:
        path, value = str(op.get("path", "")), op.get("value")
        if path == "/spec/template" and isinstance(value, dict):
            body.setdefault("spec", {})["template"] = value
        elif path.startswith("/spec/template/spec/containers/") and path.endswith("/image"):
            body.setdefault("spec", {})["template"] = {"spec": {"containers": [{"image": value}]}}
        elif path == "/spec/replicas":
            body.setdefault("spec", {})["replicas"] = value
    return body


def _image_of(body: dict[str, Any]) -> str | None:
    containers = (((body.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    return containers[0].get("image") if containers else None


def token_key_file(directory) -> str:
    """A workers' ID-token key file (activities/sealing.py) in `directory`: its path, for
    $DURABLE_ROLLOUTS_TOKEN_KEY_FILE."""
    import base64

    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    path = directory / "token-keys"
    path.write_text("k1:" + base64.b64encode(X25519PrivateKey.generate().private_bytes_raw()).decode())
    return str(path)


@contextlib.contextmanager
def workers_token_key():
    """$DURABLE_ROLLOUTS_TOKEN_KEY_FILE set to a new key while a recorded scenario's in-process worker checks
    a start's sealed token (then put back as it was)."""
    import tempfile

    from activities.sealing import KEY_FILE_ENV

    before = os.environ.get(KEY_FILE_ENV)
    with tempfile.TemporaryDirectory() as directory:
        os.environ[KEY_FILE_ENV] = token_key_file(Path(directory))
        try:
            yield
        finally:
            if before is None:
                os.environ.pop(KEY_FILE_ENV, None)
            else:
                os.environ[KEY_FILE_ENV] = before


def sealed_start(token: str, document) -> str:
    """`token` sealed for the start of `document` to the key this process's workers hold, as the CLI seals
    it (starters/identity.starter_token)."""
    from activities.sealing import private_keys, public_key, seal
    from models.starter import start_purpose

    return seal(token, public_key(private_keys()), start_purpose(document))


async def server_time(client) -> float:
    """The server's clock as a POSIX time: a time-skipping test server's runs ahead of this machine's (a
    token minted for a workflow there must say that time); any other server's is this machine's."""
    import google.protobuf.empty_pb2

    try:
        return (await client.test_service.get_current_time(google.protobuf.empty_pb2.Empty())).time.ToSeconds()
    except Exception:  # noqa: BLE001 - a server without the test service (the dev server): its clock is ours
        return time.time()


async def started_status(handle):
    """The workflow's status, or None while the server has not started it yet: a parent (a train, a pipeline)
    names its child's workflow before the test server has started it (it starts children asynchronously)."""
    from temporalio.service import RPCError, RPCStatusCode

    from models.status import RolloutStatus

    try:
        return await handle.query("status", result_type=RolloutStatus)
    except RPCError as error:
        if error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            return None
        raise


async def past_reopening(send: Callable[[], Any], attempts: int = 50) -> Any:
    """`send()` (a decision's update), sent again while the rollout answers that its approval is being
    re-opened in a new run (a continue-as-new hand-over; run 32 met a vote sent in between)."""
    from temporalio.client import WorkflowUpdateFailedError

    for attempt in range(attempts):
        try:
            return await send()
        except WorkflowUpdateFailedError as error:
            if "being re-opened" not in str(error.cause) or attempt == attempts - 1:
                raise
            await asyncio.sleep(0.2)


async def finished(handle, timeout: float = 90.0):
    """The rollout's final status; on timeout, fail saying where it is stuck."""
    from models.status import RolloutStatus

    try:
        result = await asyncio.wait_for(handle.result(), timeout)
    except TimeoutError:
        status = await handle.query("status", result_type=RolloutStatus)
        recent = [(h.event, h.step, h.detail) for h in status.history[-4:]]
        raise AssertionError(f"not finished in {timeout}s: {status.phase.value} {status.message!r} {recent}") from None
    return result if isinstance(result, RolloutStatus) else RolloutStatus.model_validate(result)


def history_payloads(events, skip: tuple[str, ...] = ()) -> list:
    """Every Payload inside history events (found as any message with an encoding in its metadata),
    leaving out the fields named in `skip` (e.g. "searchAttributes", "markerRecordedEventAttributes")."""
    from google.protobuf import json_format
    from temporalio.api.common.v1 import Payload

    found = []

    def walk(node):
        if isinstance(node, dict):
            if "encoding" in (node.get("metadata") or {}):
                found.append(json_format.ParseDict(node, Payload(), ignore_unknown_fields=True))
                return
            for key, value in node.items():
                if key not in skip:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for event in events:
        walk(json_format.MessageToDict(event))
    return found


def json_check(answer: Callable[[str], Any]):
    """A loopback HTTP server for the web provider: every GET is answered 200 with `answer(path)` as JSON
    (`answer` may record the call). Serving once returned; the caller shuts it down."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Check(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = json.dumps(answer(self.path)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Check)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


async def promoted_then_signalled(client, rollout, queue: str, first: int, second: int):
    """A recorded scenario: started; the pause at step `first` promoted by update (the CLI's way), the one at
    `second` by signal (the Web UI's); run to its end. Its handle."""
    from models.status import PromoteRequest
    from starters.commands import start_workflow

    handle = await start_workflow(client, rollout, queue, "recorder")
    await paused_at(handle, first)
    await handle.execute_update("promote", PromoteRequest(by="alice"))
    await paused_at(handle, second)
    await handle.signal("promote", PromoteRequest(by="web-ui"))
    await handle.result()
    return handle


async def aborted_at(client, rollout, queue: str, step: int, reason: str):
    """A recorded scenario: started, aborted by update while paused at step `step`, run to its end."""
    from models.status import AbortRequest
    from starters.commands import start_workflow

    handle = await start_workflow(client, rollout, queue, "recorder")
    await paused_at(handle, step)
    await handle.execute_update("abort", AbortRequest(reason=reason, by="bob"))
    await handle.result()
    return handle
