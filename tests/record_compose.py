"""Recorded Compose-host scenarios, for tests/record_histories.py: a canary through the host's proxy
promoted (by update, then by signal), one aborted, a blue-green switched back while warm and one shifted
gradually, `ObserveTarget` on a Compose host, a rolling update,
and one whose update fails and is undone. The
Compose-host activities are faked by name; the workflows run on the `docker` family's queue, as they do in
production."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from models.compose import (
    ComposeHostTarget,
    ComposeRequest,
    ComposeRollOutInput,
    ComposeRoutesInput,
    ComposeSwitchInput,
)
from models.delivery import BlueGreenPrepared, PrepareCanaryResult, RollOutResult, WeightResult
from models.names import task_queue_for
from models.spec import parse_rollout
from models.status import AbortRequest, PromoteRequest
from models.targets import ObserveInput, TargetObservation
from starters.commands import start_workflow
from tests.compose.helpers import compose_document
from tests.helpers import aborted_at, paused_at, promoted_then_signalled
from workflows.observe import ObserveTarget
from workflows.registry import ALL_WORKFLOWS


def compose_rollout(name: str, strategy: dict):
    return parse_rollout(compose_document(name, "shop", "shop/web:2.0", strategy=strategy, deadline=600,
                                          proxy={"backend": "web", "port": 8080}))


def compose_fakes(fail_roll_out: bool = False) -> list:
    @activity.defn(name="prepare_compose_canary")
    async def prepare(request: ComposeRequest) -> PrepareCanaryResult:
        return PrepareCanaryResult(total_replicas=3, stable_image="shop/web:1.0", container=request.target.service)

    @activity.defn(name="set_compose_routes")
    async def routes(request: ComposeRoutesInput) -> WeightResult:
        weight = request.routes.weight
        return WeightResult(weight=weight, canary_replicas=math.ceil(3 * weight / 100), stable_replicas=3,
                            actual_weight=float(weight), changed=True)

    @activity.defn(name="promote_compose_canary")
    async def promote(request: ComposeRequest) -> None:
        return None

    @activity.defn(name="abort_compose_canary")
    async def abort(request: ComposeRequest) -> None:
        return None

    @activity.defn(name="roll_out_compose")
    async def roll_out(request: ComposeRollOutInput) -> RollOutResult:
        if fail_roll_out and request.kind != "Undo":
            raise ApplicationError("composeHost web-1/shop/web: 0/3 new containers ready after 600 s",
                                   type="ProgressDeadlineExceeded", non_retryable=True)
        return RollOutResult(previous_image="shop/web:1.0", previous_revision=1, revision=2, replicas=3,
                             image=request.image)

    @activity.defn(name="undo_compose")
    async def undo(request: ComposeRollOutInput) -> str:
        return "shop/web:1.0"

    @activity.defn(name="observe_compose_target")
    async def observe(target: ComposeHostTarget) -> TargetObservation:
        return TargetObservation(target=target.describe(), version="shop/web:2.0", ready=True,
                                 detail="3/3 containers ready on shop/web:2.0", instances=3, revision="2")

    @activity.defn(name="prepare_compose_blue_green")
    async def prepare_blue_green(request: ComposeRequest) -> BlueGreenPrepared:
        return BlueGreenPrepared(total_replicas=3, stable_image="shop/web:1.0", stable_hash="0123456789ab",
                                 container=request.target.service)

    @activity.defn(name="scale_compose_preview")
    async def scale_preview(request: ComposeSwitchInput) -> int:
        return request.replicas or 0

    @activity.defn(name="shift_compose_traffic")
    async def shift(request: ComposeSwitchInput) -> int:
        return request.weight or 0

    @activity.defn(name="switch_compose_production")
    async def switch(request: ComposeSwitchInput) -> str:
        return request.to

    @activity.defn(name="complete_compose_blue_green")
    async def complete(request: ComposeRequest) -> None:
        return None

    @activity.defn(name="abort_compose_blue_green")
    async def abort_blue_green(request: ComposeRequest) -> None:
        return None

    return [prepare, routes, promote, abort, roll_out, undo, observe, prepare_blue_green, scale_preview, shift,
            switch, complete, abort_blue_green]


def on_docker(scenario, fail_roll_out: bool = False):
    """Run `scenario` with a worker on the `docker` family's queue beside the recorder's."""
    async def run(client: Client, queue: str):
        with ThreadPoolExecutor(max_workers=4) as pool:
            async with Worker(client, task_queue=task_queue_for(queue, "docker"), workflows=ALL_WORKFLOWS,
                              activities=compose_fakes(fail_roll_out), activity_executor=pool):
                return await scenario(client, queue)

    return run


async def canary_promoted(client: Client, queue: str):
    rollout = compose_rollout("recorded-compose-canary", {"canary": {"steps": [
        {"setWeight": 10}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]}})
    return await promoted_then_signalled(client, rollout, queue, 1, 3)


async def canary_aborted(client: Client, queue: str):
    rollout = compose_rollout("recorded-compose-aborted", {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}})
    return await aborted_at(client, rollout, queue, 1, "errors")


async def blue_green_switched_back(client: Client, queue: str):
    """Promoted by signal, then aborted by update while the old containers are warm: production switches back."""
    rollout = compose_rollout("recorded-compose-blue-green", {"blueGreen": {
        "autoPromotionEnabled": False, "scaleDownDelaySeconds": 600, "abortScaleDownDelaySeconds": 0}})
    handle = await start_workflow(client, rollout, queue, "recorder")
    await paused_at(handle, 1)
    await handle.signal("promote", PromoteRequest(by="web-ui"))
    await paused_at(handle, 3)
    await handle.execute_update("abort", AbortRequest(reason="latency", by="bob"))
    await handle.result()
    return handle


async def blue_green_gradual(client: Client, queue: str):
    rollout = compose_rollout("recorded-compose-blue-green-gradual", {"blueGreen": {
        "scaleDownDelaySeconds": 0, "gradualShift": {"weights": [25, 50], "hold": "1s"}}})
    handle = await start_workflow(client, rollout, queue, "recorder")
    await handle.result()
    return handle


async def observed(client: Client, queue: str):
    target = compose_rollout("recorded-compose-observe", {"rollingUpdate": {}}).spec.target
    handle = await client.start_workflow(ObserveTarget.run, ObserveInput(target=target),
                                         id="rollout/test/recorded-compose-observe/observe",
                                         task_queue=task_queue_for(queue, "docker"))
    await handle.result()
    return handle


def rolling(name: str):
    async def run(client: Client, queue: str):
        rollout = compose_rollout(name, {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
        handle = await start_workflow(client, rollout, queue, "recorder")
        await handle.result()
        return handle

    return run


SCENARIOS = [
    ("compose-canary-promoted", on_docker(canary_promoted), lambda: []),
    ("compose-canary-aborted", on_docker(canary_aborted), lambda: []),
    ("compose-observe-target", on_docker(observed), lambda: []),
    ("compose-blue-green-switched-back", on_docker(blue_green_switched_back), lambda: []),
    ("compose-blue-green-gradual", on_docker(blue_green_gradual), lambda: []),
    ("compose-rolling-healthy", on_docker(rolling("recorded-compose-rolling")), lambda: []),
    ("compose-rolling-undone", on_docker(rolling("recorded-compose-rolling-undone"), fail_roll_out=True), lambda: []),
]
