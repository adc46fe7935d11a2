"""Record workflow histories for the replay tests: `python -m tests.record_histories`.

Runs each scenario on a fresh dev server with the Kubernetes activities faked (replay does not run
activities, only the workflow code), and writes `tests/histories/<scenario>.json`. Re-record only
when a released workflow changes on purpose and the change is guarded by `workflow.patched`:
existing files are kept unless `--force` is given.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from temporalio import activity
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from localcluster.devserver import DevServer, free_port
from models.analysis import MeasureInput, Measurement
from models.approvals import PauseRequest, ResumeRequest
from models.kubernetes import (
    BlueGreenInput,
    BlueGreenPrepared,
    RollOutInput,
    RollOutResult,
    ScalePreviewInput,
    UndoInput,
    WarmRevision,
    WindowInput,
)
from models.spec import RollbackWindow
from models.status import AbortRequest, PromoteRequest, Reason
from models.targets import KubernetesTarget, ObserveInput, TargetObservation
from models.webhooks import WebhookAnswer, WebhookCall
from starters.commands import start_workflow
from tests import (
    record_analysis,
    record_compose,
    record_decisions,
    record_ecs,
    record_pipelines,
    record_releases,
    record_stores,
    record_workloads,
)
from tests.helpers import canary_rollout, paused_at, with_reason
from tests.record_decisions import decision_fakes
from tests.test_canary_workflow import FakeCluster
from workflows.observe import ObserveTarget
from workflows.registry import ALL_WORKFLOWS

HISTORIES = Path(__file__).resolve().parent / "histories"


async def promoted(client: Client, queue: str):
    """Timed pause, an open pause promoted by update, a second promoted by signal, then healthy."""
    rollout = canary_rollout(name="recorded-promoted", steps=[
        {"setWeight": 20}, {"pause": {"duration": "2s"}}, {"setWeight": 50}, {"pause": {}},
        {"setWeight": 80}, {"pause": {}}, {"setWeight": 100}])
    handle = await start_workflow(client, rollout, queue, "recorder")
    await paused_at(handle, 3)
    await handle.execute_update("promote", PromoteRequest(by="alice"))
    await paused_at(handle, 5)
    await handle.signal("promote", PromoteRequest(by="web-ui"))
    await handle.result()
    return handle


async def aborted(client: Client, queue: str):
    rollout = canary_rollout(name="recorded-aborted", steps=[{"setWeight": 30}, {"pause": {}}, {"setWeight": 100}])
    handle = await start_workflow(client, rollout, queue, "recorder")
    await paused_at(handle, 1)
    await handle.execute_update("abort", AbortRequest(reason="error rate", by="bob"))
    await handle.result()
    return handle


def rolling(kind: str, fail: bool):
    async def scenario(client: Client, queue: str):
        name = f"recorded-{kind.lower()}{'-failing' if fail else ''}"
        rollout = canary_rollout(name=name, strategy={kind: {}})
        handle = await start_workflow(client, rollout, queue, "recorder")
        await handle.result()
        return handle

    return scenario


def revision(action: str):
    async def scenario(client: Client, queue: str):
        rollout = canary_rollout(name=f"recorded-{action}", strategy={"rollingUpdate": {}})
        handle = await start_workflow(client, rollout, queue, "recorder", action=action, to_revision=0)
        await handle.result()
        return handle

    return scenario


def deployment_fakes(fail: bool) -> list:
    @activity.defn(name="roll_out_deployment")
    async def roll_out(request: RollOutInput) -> RollOutResult:
        if fail:
            raise ApplicationError("0/4 ready after 120s", type="ProgressDeadlineExceeded", non_retryable=True)
        return RollOutResult(previous_image="registry.local/checkout-api:1.4.1", previous_revision=1, revision=2,
                             replicas=4)

    @activity.defn(name="undo_deployment")
    async def undo(request: UndoInput) -> str:
        return "registry.local/checkout-api:1.4.1"

    return [roll_out, undo]


def blue_green_fakes() -> list:
    @activity.defn(name="prepare_blue_green")
    async def prepare(request: BlueGreenInput) -> BlueGreenPrepared:
        return BlueGreenPrepared(total_replicas=4, stable_image="registry.local/checkout-api:1.4.1",
                                 stable_hash="5d4f8b9c7", container="app")

    @activity.defn(name="scale_preview")
    async def scale_preview(request: ScalePreviewInput) -> int:
        return request.replicas

    @activity.defn(name="switch_active")
    async def switch_active(request: BlueGreenInput) -> None:
        return None

    @activity.defn(name="complete_blue_green")
    async def complete(request: BlueGreenInput) -> None:
        return None

    @activity.defn(name="abort_blue_green")
    async def abort(request: BlueGreenInput) -> None:
        return None

    @activity.defn(name="shift_traffic")
    async def shift_traffic(request: BlueGreenInput) -> None:
        return None

    return [prepare, scale_preview, switch_active, complete, abort, shift_traffic]


def blue_green(switch_back: bool):
    async def scenario(client: Client, queue: str):
        name = f"recorded-blue-green{'-switched-back' if switch_back else ''}"
        rollout = canary_rollout(name=name, strategy={"blueGreen": {
            "activeService": "checkout-api", "previewService": "checkout-api-preview", "previewReplicaCount": 2,
            "autoPromotionEnabled": False, "scaleDownDelaySeconds": 3600, "abortScaleDownDelaySeconds": 1}})
        handle = await start_workflow(client, rollout, queue, "recorder")
        await paused_at(handle, 1)
        await handle.execute_update("promote", PromoteRequest(by="alice"))
        await paused_at(handle, 3)
        if switch_back:
            await handle.execute_update("abort", AbortRequest(reason="errors after the switch", by="bob"))
        else:
            await handle.signal("promote", PromoteRequest(by="web-ui"))
        await handle.result()
        return handle

    return scenario


def gradual_rollout(name: str, hold: str):
    return canary_rollout(name=name, strategy={"blueGreen": {
        "activeService": "checkout-api", "previewService": "checkout-api-preview", "scaleDownDelaySeconds": 0,
        "trafficRouting": {"istio": {"virtualService": {"name": "checkout-api"}}},
        "gradualShift": {"weights": [25, 50, 100], "hold": hold}}})


async def blue_green_gradual(client: Client, queue: str):
    """Blue-green through a router: preview weights 25 and 50 held, then the switch, auto-promoted."""
    handle = await start_workflow(client, gradual_rollout("recorded-blue-green-gradual", "5s"), queue, "recorder")
    await handle.result()
    return handle


async def blue_green_gradual_held(client: Client, queue: str):
    """The gradual shift held by `rollout pause` at 25% past its hold (a step boundary), then resumed."""
    handle = await start_workflow(client, gradual_rollout("recorded-blue-green-gradual-held", "2s"), queue, "recorder")
    await paused_at(handle, 2)
    await handle.execute_update("pause", PauseRequest(by="sre", comment="look at the 25% first"))
    await with_reason(handle, Reason.PAUSED_BY_USER.value, timeout=30)
    await handle.signal("resume", ResumeRequest(by="web-ui"))
    await handle.result()
    return handle


async def ab_test(client: Client, queue: str):
    """A timed A/B test that then waits for a decision, promoted by update."""
    rollout = canary_rollout(name="recorded-ab-test", strategy={"abTest": {
        "stableService": "checkout-api", "canaryService": "checkout-api-canary",
        "trafficRouting": {"istio": {"virtualService": {"name": "checkout-api"}}},
        "audience": [{"cookieName": "beta", "cookieValue": "yes"}], "duration": "1s"}})
    handle = await start_workflow(client, rollout, queue, "recorder")
    await paused_at(handle, 3)
    await handle.execute_update("promote", PromoteRequest(by="pm"))
    await handle.result()
    return handle


def window_fakes() -> list:
    @activity.defn(name="keep_warm")
    async def keep_warm(request: WindowInput) -> list[WarmRevision]:
        return [WarmRevision(revision=1, image="registry.local/checkout-api:1.4.1")]

    @activity.defn(name="switch_to_warm")
    async def switch_to_warm(request: WindowInput) -> None:
        return None

    @activity.defn(name="close_window")
    async def close_window(request: WindowInput) -> None:
        return None

    return [keep_warm, switch_to_warm, close_window]


def windowed(undo: bool):
    """A rolling update with a rollback window; the window is undone, or closed by promote."""
    async def scenario(client: Client, queue: str):
        from models.names import window_id
        from models.status import UndoRequest

        rollout = canary_rollout(name=f"recorded-window{'-undone' if undo else ''}", strategy={"rollingUpdate": {}})
        rollout = rollout.model_copy(update={"spec": rollout.spec.model_copy(update={"rollback_window": RollbackWindow(
            duration=timedelta(hours=1), service="checkout-api")})})
        handle = await start_workflow(client, rollout, queue, "recorder")
        await handle.result()
        window = client.get_workflow_handle(window_id(rollout.rollout_id))
        await paused_at(window, 1)
        if undo:
            await window.execute_update("undo", UndoRequest(by="oncall"))
        else:
            await window.execute_update("promote", PromoteRequest(by="oncall"))
        await window.result()
        return window if undo else handle

    return scenario


def measure_fakes() -> list:
    @activity.defn(name="measure")
    async def measure(request: MeasureInput) -> Measurement:
        phase = "Inconclusive" if request.metric.name == "gate" else "Successful"
        return Measurement(phase=phase, value="[0.97]", query="sum(rate(x[1m]))")

    return [measure]


async def analysed(client: Client, queue: str):
    """A canary with an analysis step that is Inconclusive (promoted by a person) and a background analysis."""
    from models.spec import parse_rollout
    from tests.helpers import canary_document

    document = canary_document(name="recorded-analysed", steps=[
        {"setWeight": 20}, {"analysis": {"templates": [{"templateName": "gate"}]}}, {"setWeight": 50},
        {"pause": {"duration": "3s"}}, {"setWeight": 100}])
    metric = {"provider": {"prometheus": {"address": "http://prometheus.invalid", "query": "up"}},
              "successCondition": "result[0] > 0.99", "failureCondition": "result[0] < 0.5"}
    document["spec"]["analysis"] = {"templates": [
        {"name": "gate", "metrics": [{"name": "gate", **metric}]},
        # An interval longer than the run: the background analysis measures once, and its timer is far from
        # due when the steps end and cancel it. (The committed history was recorded with 1s; on the
        # time-skipping server a cancelled timer that fired while the task was at the worker strands the
        # run — "invalid history builder state for action", temporalio/sdk-java#3088 — which the activity
        # contract test, re-running this scenario, met once in a loaded CI run.)
        {"name": "watch", "metrics": [{"name": "watch", "interval": "1h", **metric,
                                       "successCondition": "result[0] > 0.9"}]}]}
    document["spec"]["strategy"]["canary"]["analysis"] = {"templates": [{"templateName": "watch"}], "startingStep": 2}
    handle = await start_workflow(client, parse_rollout(document), queue, "recorder")
    await paused_at(handle, 1)
    await handle.execute_update("promote", PromoteRequest(by="sre"))
    await handle.result()
    return handle


def webhook_fakes() -> list:
    answers: dict[str, int] = {}

    @activity.defn(name="call_webhook")
    async def call_webhook(call: WebhookCall) -> WebhookAnswer:
        answers[call.hook.type] = answers.get(call.hook.type, 0) + 1
        refuse = call.hook.type == "confirm-promotion" and answers[call.hook.type] == 1
        return WebhookAnswer(status=403 if refuse else 200 if call.hook.type != "rollback" else 404)

    return [call_webhook]


async def hooked(client: Client, queue: str):
    """A canary with every kind of webhook; confirm-promotion says no once."""
    from models.spec import parse_rollout
    from tests.helpers import canary_document

    document = canary_document(name="recorded-webhooks", steps=[{"setWeight": 30}, {"setWeight": 100}])
    # The rollback hook is polled beside the steps and its sleep cancelled when they end: a long interval keeps
    # that timer far from due (see `analysed` on sdk-java#3088); the gates ask again after 1s.
    document["spec"]["webhooks"] = [{"name": kind.replace("-", ""), "type": kind, "url": "http://hooks.invalid/",
                                     "interval": "1h" if kind == "rollback" else "1s"} for kind in
                                    ("confirm-rollout", "pre-rollout", "rollout", "confirm-promotion", "rollback",
                                     "post-rollout", "event")]
    handle = await start_workflow(client, parse_rollout(document), queue, "recorder")
    await handle.result()
    return handle


async def analysis_run(client: Client, queue: str):
    """`rollout analyze`: the shipped error-rate preset run once (measurements faked: Successful)."""
    from models.analysis import AnalysisStep
    from models.status import AnalyzeInput
    from workflows.analysis_run import AnalysisRun

    step = AnalysisStep.model_validate({"templates": [{"templateName": "error-rate"}],
                                        "args": [{"name": "namespace", "value": "shop"},
                                                 {"name": "version", "value": "1.4.2"}]})
    rollout = canary_rollout(name="recorded-analysis")
    handle = await client.start_workflow(AnalysisRun.run, AnalyzeInput(rollout=rollout, analyze=step),
                                         id="analysis/test/recorded", task_queue=queue)
    await handle.result()
    return handle


async def failed(client: Client, queue: str):
    rollout = canary_rollout(name="recorded-failed", steps=[{"setWeight": 25}, {"setWeight": 60}, {"pause": {}}])
    handle = await start_workflow(client, rollout, queue, "recorder")
    await handle.result()
    return handle


def observe_fakes() -> list:
    @activity.defn(name="observe_kubernetes_target")
    async def observe(target: KubernetesTarget) -> TargetObservation:
        return TargetObservation(target=f"deployment {target.namespace}/{target.deployment}",
                                 version="registry.local/checkout-api:1.4.2", ready=True, detail="4/4 ready")

    return [observe]


async def observed(client: Client, queue: str):
    """`rollout start` asks what the target of a spec that ended Healthy runs now."""
    handle = await client.start_workflow(ObserveTarget.run, ObserveInput(target=canary_rollout().spec.target),
                                         id="rollout/test/recorded-observe/observe", task_queue=queue)
    await handle.result()
    return handle


# name, scenario, the fake activities (built fresh for each run)
SCENARIOS = [
    ("canary-promoted", promoted, lambda: FakeCluster().activities()),
    ("canary-aborted", aborted, lambda: FakeCluster().activities()),
    ("canary-failed", failed, lambda: FakeCluster(fail_at_weight=60).activities()),
    ("rolling-update-healthy", rolling("rollingUpdate", False), lambda: deployment_fakes(False)),
    ("rolling-update-undone", rolling("rollingUpdate", True), lambda: deployment_fakes(True)),
    ("recreate-healthy", rolling("recreate", False), lambda: deployment_fakes(False)),
    ("ab-test-promoted", ab_test, lambda: FakeCluster().activities()),
    ("canary-analysed", analysed, lambda: FakeCluster().activities() + measure_fakes()),
    ("canary-webhooks", hooked, lambda: FakeCluster().activities() + webhook_fakes()),
    ("analysis-run-successful", analysis_run, measure_fakes),
    ("rolling-update-windowed", windowed(False), lambda: deployment_fakes(False) + window_fakes()),
    ("rollback-window-undone", windowed(True), lambda: deployment_fakes(False) + window_fakes()),
    ("undo-healthy", revision("undo"), lambda: deployment_fakes(False)),
    ("restart-healthy", revision("restart"), lambda: deployment_fakes(False)),
    ("blue-green-healthy", blue_green(False), blue_green_fakes),
    ("blue-green-switched-back", blue_green(True), blue_green_fakes),
    ("blue-green-gradual", blue_green_gradual, blue_green_fakes),
    ("blue-green-gradual-held", blue_green_gradual_held, blue_green_fakes),
    ("canary-approved", record_decisions.approved, lambda: FakeCluster().activities() + decision_fakes()),
    ("canary-skipped-and-full", record_decisions.skipped_and_full, lambda: FakeCluster().activities() + measure_fakes()),
    *record_decisions.SCENARIOS,
    ("blue-green-approved", record_decisions.blue_green_approved, lambda: blue_green_fakes() + decision_fakes()),
    ("observe-target", observed, observe_fakes),
    *record_releases.SCENARIOS,
    *record_stores.SCENARIOS,
    *record_pipelines.SCENARIOS,
    *record_analysis.SCENARIOS,
    *record_ecs.SCENARIOS,
    *record_compose.SCENARIOS,
    *record_workloads.SCENARIOS,
]


async def record(client: Client, name: str, scenario, fakes) -> WorkflowHistory:
    """Run one scenario on its own task queue with its fake activities; its workflow's history."""
    queue = f"record-{name}-{uuid.uuid4().hex[:6]}"
    with ThreadPoolExecutor(max_workers=4) as pool:
        async with Worker(client, task_queue=queue, workflows=ALL_WORKFLOWS, activities=fakes(), activity_executor=pool):
            handle = await scenario(client, queue)
            return await handle.fetch_history()


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = DevServer(db_file=Path(tmp) / "t.db", port=free_port(), ui_port=None).start()
        try:
            client = await Client.connect(server.address, data_converter=pydantic_data_converter)
            for name, scenario, fakes in SCENARIOS:
                if (HISTORIES / f"{name}.json").exists() and "--force" not in sys.argv:
                    continue
                history = await record(client, name, scenario, fakes)
                (HISTORIES / f"{name}.json").write_text(history.to_json())
                print(f"recorded {name}: {len(history.events)} events")
        finally:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
