"""Recorded ECS scenarios, for tests/record_histories.py: a canary on an ECS service promoted (an open pause
promoted by update, a header route, a second pause promoted by signal), one aborted, and `ObserveTarget` on
ECS. The ECS activities are faked by name; the workflows run on the `aws` family's queue, as they do in
production."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from models.analysis import MeasureInput, Measurement
from models.delivery import BlueGreenPrepared, PrepareCanaryResult, RollOutResult, WarmRevision, WeightResult
from models.ecs import (
    EcsRequest,
    EcsRollOutInput,
    EcsRoutesInput,
    EcsSideInput,
    EcsSwitchInput,
    EcsTarget,
    EcsWindowInput,
)
from models.names import task_queue_for, window_id
from models.spec import parse_rollout
from models.status import AbortRequest, PromoteRequest, UndoRequest
from models.targets import ObserveInput, TargetObservation
from starters.commands import start_workflow
from tests.helpers import ECS_TARGET, ecs_document, paused_at
from workflows.observe import ObserveTarget
from workflows.registry import ALL_WORKFLOWS


def ecs_rollout(name: str, steps: list[dict], strategy: dict | None = None):
    document = ecs_document(name, ECS_TARGET, "shop/checkout:2.0", steps, deadline=600)
    if strategy is not None:
        document["spec"]["strategy"] = strategy
    return parse_rollout(document)


def ecs_fakes(fail_roll_out: bool = False) -> list:
    @activity.defn(name="prepare_ecs_canary")
    async def prepare(request: EcsRequest) -> PrepareCanaryResult:
        return PrepareCanaryResult(total_replicas=4, stable_image="shop/checkout:1.0", container=request.target.container)

    @activity.defn(name="set_ecs_routes")
    async def routes(request: EcsRoutesInput) -> WeightResult:
        weight = request.routes.weight
        return WeightResult(weight=weight, canary_replicas=math.ceil(4 * max(weight, 1) / 100), stable_replicas=4,
                            actual_weight=float(weight), changed=True)

    @activity.defn(name="promote_ecs_canary")
    async def promote(request: EcsRequest) -> None:
        return None

    @activity.defn(name="abort_ecs_canary")
    async def abort(request: EcsRequest) -> None:
        return None

    @activity.defn(name="observe_ecs_target")
    async def observe(target: EcsTarget) -> TargetObservation:
        return TargetObservation(target=target.describe(), version="shop/checkout:2.0", ready=True,
                                 detail="4/4 tasks running", instances=4, revision="checkout:7")

    @activity.defn(name="prepare_ecs_blue_green")
    async def prepare_blue_green(request: EcsRequest) -> BlueGreenPrepared:
        return BlueGreenPrepared(total_replicas=4, stable_image="shop/checkout:1.0", stable_hash="ecs-svc/1",
                                 container=request.target.container)

    @activity.defn(name="scale_ecs_preview")
    async def scale_preview(request: EcsSwitchInput) -> int:
        return request.replicas or 0

    @activity.defn(name="shift_ecs_traffic")
    async def shift(request: EcsSwitchInput) -> int:
        return request.weight or 0

    @activity.defn(name="switch_ecs_production")
    async def switch(request: EcsSwitchInput) -> str:
        return request.to

    @activity.defn(name="complete_ecs_blue_green")
    async def complete(request: EcsRequest) -> None:
        return None

    @activity.defn(name="abort_ecs_blue_green")
    async def abort_blue_green(request: EcsRequest) -> None:
        return None

    @activity.defn(name="roll_out_ecs")
    async def roll_out(request: EcsRollOutInput) -> RollOutResult:
        if fail_roll_out:
            raise ApplicationError("task set ecs-svc/2: 1/4 tasks running, 0 healthy targets after 600s",
                                   type="ProgressDeadlineExceeded", non_retryable=True)
        return RollOutResult(previous_image="shop/checkout:1.0", previous_revision=6, revision=7, replicas=4,
                             image=request.image)

    @activity.defn(name="undo_ecs")
    async def undo(request: EcsRollOutInput) -> str:
        return "shop/checkout:1.0"

    @activity.defn(name="ecs_target_group")
    async def target_group(request: EcsSideInput) -> str:
        return {"Latest": "targetgroup/checkout-b/2", "Stable": "targetgroup/checkout-a/1"}[request.role]

    @activity.defn(name="measure")
    async def measure(request: MeasureInput) -> Measurement:
        ok = request.args.get("group") == "targetgroup/checkout-b/2"
        return Measurement(phase="Successful" if ok else "Failed", value=str(request.args))

    @activity.defn(name="keep_ecs_warm")
    async def keep_warm(request: EcsWindowInput) -> list[WarmRevision]:
        return [WarmRevision(revision=6, image="shop/checkout:1.0")]

    @activity.defn(name="switch_ecs_to_warm")
    async def switch_to_warm(request: EcsWindowInput) -> None:
        return None

    @activity.defn(name="close_ecs_window")
    async def close_window(request: EcsWindowInput) -> None:
        return None

    return [prepare, routes, promote, abort, observe, prepare_blue_green, scale_preview, shift, switch, complete,
            abort_blue_green, roll_out, undo, target_group, measure, keep_warm, switch_to_warm, close_window]


def on_aws(scenario, fail_roll_out: bool = False):
    """Run `scenario` with a worker on the `aws` family's queue beside the recorder's (its fakes: ECS's)."""
    async def run(client: Client, queue: str):
        with ThreadPoolExecutor(max_workers=4) as pool:
            async with Worker(client, task_queue=task_queue_for(queue, "aws"), workflows=ALL_WORKFLOWS,
                              activities=ecs_fakes(fail_roll_out), activity_executor=pool):
                return await scenario(client, queue)

    return run


async def promoted(client: Client, queue: str):
    rollout = ecs_rollout("recorded-ecs-promoted", [
        {"setWeight": 20}, {"pause": {}},
        {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "x-beta", "headerValue": {"exact": "yes"}}]}},
        {"setWeight": 50}, {"pause": {}}, {"setWeight": 100}])
    handle = await start_workflow(client, rollout, queue, "recorder")
    await paused_at(handle, 1)
    await handle.execute_update("promote", PromoteRequest(by="alice"))
    await paused_at(handle, 4)
    await handle.signal("promote", PromoteRequest(by="web-ui"))
    await handle.result()
    return handle


async def aborted(client: Client, queue: str):
    rollout = ecs_rollout("recorded-ecs-aborted", [{"setWeight": 30}, {"pause": {}}, {"setWeight": 100}])
    handle = await start_workflow(client, rollout, queue, "recorder")
    await paused_at(handle, 1)
    await handle.execute_update("abort", AbortRequest(reason="error rate", by="bob"))
    await handle.result()
    return handle


async def blue_green_switched_back(client: Client, queue: str):
    """Promoted by signal, then aborted by update while the old task set is warm: production switches back."""
    rollout = ecs_rollout("recorded-ecs-blue-green", [], {"blueGreen": {
        "autoPromotionEnabled": False, "scaleDownDelaySeconds": 600, "abortScaleDownDelaySeconds": 0}})
    handle = await start_workflow(client, rollout, queue, "recorder")
    await paused_at(handle, 1)
    await handle.signal("promote", PromoteRequest(by="web-ui"))
    await paused_at(handle, 3)
    await handle.execute_update("abort", AbortRequest(reason="latency", by="bob"))
    await handle.result()
    return handle


async def blue_green_gradual(client: Client, queue: str):
    """A gradual shift through the ALB's weights, then completion."""
    rollout = ecs_rollout("recorded-ecs-gradual", [], {"blueGreen": {
        "gradualShift": {"weights": [50, 100], "hold": "1s"}, "scaleDownDelaySeconds": 0}})
    handle = await start_workflow(client, rollout, queue, "recorder")
    await handle.result()
    return handle


def rolling(name: str):
    async def scenario(client: Client, queue: str):
        rollout = ecs_rollout(name, [], {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
        handle = await start_workflow(client, rollout, queue, "recorder")
        await handle.result()
        return handle

    return scenario


async def analysed(client: Client, queue: str):
    """A canary's analysis whose arg is the candidate's target group (valueFrom.targetGroupValue)."""
    document = ecs_document("recorded-ecs-analysed", ECS_TARGET, "shop/checkout:2.0", [
        {"setWeight": 50},
        {"analysis": {"templates": [{"templateName": "alb-errors"}],
                      "args": [{"name": "group", "valueFrom": {"targetGroupValue": "Latest"}}]}},
        {"setWeight": 100}], deadline=600)
    document["spec"]["analysis"] = {"templates": [{"name": "alb-errors", "args": [{"name": "group"}], "metrics": [{
        "name": "errors", "successCondition": "result['rate'][0] < 5", "provider": {"cloudWatch": {
            "region": "us-east-1", "metricDataQueries": [{"id": "rate", "metricStat": {"metric": {
                "namespace": "AWS/ApplicationELB", "metricName": "HTTPCode_Target_5XX_Count",
                "dimensions": [{"name": "TargetGroup", "value": "{{args.group}}"}]}}}]}}}]}]}
    handle = await start_workflow(client, parse_rollout(document), queue, "recorder")
    final = await handle.result()
    assert final.phase.value == "Healthy", final.message
    return handle


async def window_undone(client: Client, queue: str):
    """A canary with a rollback window on ECS; `rollout undo` switches to the warm task set."""
    document = ecs_document("recorded-ecs-window", ECS_TARGET, "shop/checkout:2.0", [{"setWeight": 100}], deadline=600)
    document["spec"]["rollbackWindow"] = {"duration": "1h"}
    rollout = parse_rollout(document)
    handle = await start_workflow(client, rollout, queue, "recorder")
    await handle.result()
    window = client.get_workflow_handle(window_id(rollout.rollout_id))
    await paused_at(window, 1)
    await window.execute_update("undo", UndoRequest(by="oncall"))
    await window.result()
    return window


async def observed(client: Client, queue: str):
    target = ecs_rollout("recorded-ecs-observe", [{"setWeight": 100}]).spec.target
    handle = await client.start_workflow(ObserveTarget.run, ObserveInput(target=target),
                                         id="rollout/test/recorded-ecs-observe/observe",
                                         task_queue=task_queue_for(queue, "aws"))
    await handle.result()
    return handle


SCENARIOS = [
    ("ecs-canary-promoted", on_aws(promoted), lambda: []),
    ("ecs-canary-aborted", on_aws(aborted), lambda: []),
    ("ecs-observe-target", on_aws(observed), lambda: []),
    ("ecs-blue-green-switched-back", on_aws(blue_green_switched_back), lambda: []),
    ("ecs-blue-green-gradual", on_aws(blue_green_gradual), lambda: []),
    ("ecs-canary-analysed-by-target-group", on_aws(analysed), lambda: []),
    ("ecs-rollback-window-undone", on_aws(window_undone), lambda: []),
    ("ecs-rolling-healthy", on_aws(rolling("recorded-ecs-rolling")), lambda: []),
    ("ecs-rolling-undone", on_aws(rolling("recorded-ecs-rolling-undone"), fail_roll_out=True), lambda: []),
]
