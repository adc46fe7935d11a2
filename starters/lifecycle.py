"""`rollout retry`, `rollout undo` and `rollout restart`: new runs of a rollout that already ran, with
the spec it was started with; an undo goes through the rollout's open rollback window (or a warm
blue-green) when there is one, so a warm copy takes the traffic at once. `rollout analyze`: a one-off
analysis with a spec's templates."""

from __future__ import annotations

import uuid

from pydantic import ValidationError
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from models import names
from models.analysis import AnalysisStep
from models.presets import resolve
from models.spec import Rollout
from models.status import AbortRequest, AnalyzeInput, ControlResult, Phase, Reason, RolloutStatus, RunInput, UndoRequest
from starters.commands import _started, connect, follow, start_workflow, status_or_none, who
from starters.exitcodes import ExitCode, UserError
from workflows.analysis_run import AnalysisRun


async def _last_run(client: Client, rollout_id: str) -> tuple[WorkflowHandle, bool, RolloutStatus | None]:
    """The rollout's latest run: its handle, whether it still runs, its last status."""
    handle = client.get_workflow_handle(rollout_id)
    try:
        description = await handle.describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise UserError(f"no rollout {rollout_id}", ExitCode.NOT_FOUND) from None
        raise
    return handle, description.status == WorkflowExecutionStatus.RUNNING, await status_or_none(handle)


async def _original(client: Client, handle: WorkflowHandle) -> tuple[RunInput, str]:
    """The input the run was started with, and the base task queue it was started from (its own is its
    target family's, which starting again derives anew)."""
    started = (await handle.fetch_history()).events[0].workflow_execution_started_event_attributes
    [original] = await client.data_converter.decode(started.input.payloads, [RunInput])
    return original, names.base_queue(started.task_queue.name, original.rollout.spec.target.family)


async def retry(rollout_id: str, wait: bool, timeout: float, as_json: bool, id_token_file: str | None = None) -> int:
    """Run a rollout that ended Degraded again from the start, with the spec it was started with."""
    client = await connect()
    handle, running, last = await _last_run(client, rollout_id)
    if running:
        raise UserError(f"rollout {rollout_id} is still running: nothing to retry", ExitCode.CONFLICT)
    if last is not None and last.phase is Phase.HEALTHY:
        raise UserError(f"rollout {rollout_id} ended Healthy: start a new rollout instead", ExitCode.CONFLICT)
    original, queue = await _original(client, handle)
    if original.action != "rollout":
        raise UserError(f"rollout {rollout_id}'s last run was `rollout {original.action}`: run that again instead",
                        ExitCode.CONFLICT)
    from starters.identity import starter_token

    handle = await start_workflow(client, original.rollout, queue, who(),
                                  starter_token=starter_token(original.rollout, id_token_file))
    return await _started(handle, wait, timeout, as_json)


async def revision_action(rollout_id: str, action: str, to_revision: int, wait: bool, timeout: float,
                          as_json: bool) -> int:
    """`rollout undo` / `rollout restart` on the rollout's target. An undo of a blue-green still keeping
    the previous version warm is its abort: the active Service switches back at once."""
    client = await connect()
    if action == "undo":
        switched = await _undo_in_window(client, rollout_id, to_revision, wait, timeout, as_json)
        if switched is not None:
            return switched
    handle, running, last = await _last_run(client, rollout_id)
    if running:
        warm = last is not None and last.strategy == "blueGreen" and last.canary_weight == 100
        if action == "undo" and warm and not to_revision:
            typed = client.get_workflow_handle(rollout_id, result_type=RolloutStatus)
            try:
                await typed.execute_update("abort", AbortRequest(reason="rollout undo: switch back", by=who()))
            except WorkflowUpdateFailedError as error:
                raise UserError(f"cannot undo {rollout_id}: {error.cause.message if error.cause else error}",
                                ExitCode.CONFLICT) from None
            print(f"switching {rollout_id} back to the previous version (kept warm)")
            return await follow(typed, timeout, quiet=as_json) if wait else ExitCode.OK
        raise UserError(f"rollout {rollout_id} is still running: abort it (`rollout abort {rollout_id} --reason ...`)"
                        f" instead of {action}", ExitCode.CONFLICT)
    original, queue = await _original(client, handle)
    k8s = original.rollout.spec.target.kubernetes
    if k8s is not None and k8s.in_place is not None:
        raise UserError(f"cannot {action} {rollout_id}: a {k8s.in_place.kind} is rolled only as a canary, in place "
                        f"(start the spec of the version to go back to)", ExitCode.INVALID)
    handle = await start_workflow(client, original.rollout, queue, who(), action=action, to_revision=to_revision)
    return await _started(handle, wait, timeout, as_json)


async def _undo_in_window(client: Client, rollout_id: str, to_revision: int, wait: bool, timeout: float,
                          as_json: bool) -> int | None:
    """Undo through the rollout's open rollback window (a warm copy takes the traffic at once), if there is one."""
    window = client.get_workflow_handle(names.window_id(rollout_id), result_type=RolloutStatus)
    try:
        if (await window.describe()).status != WorkflowExecutionStatus.RUNNING:
            return None
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    try:
        result = await window.execute_update("undo", UndoRequest(to_revision=to_revision, by=who()), result_type=ControlResult)
    except WorkflowUpdateFailedError as error:
        raise UserError(f"cannot undo {rollout_id}: {error.cause.message if error.cause else error}",
                        ExitCode.CONFLICT) from None
    if not as_json:
        print(f"{rollout_id}: {result.message} (warm copy, through its rollback window)")
    return await follow(window, timeout, quiet=as_json) if wait else ExitCode.OK


async def analyze(rollout: Rollout, templates: list[str], args: list[str], task_queue: str, timeout: float,
                  as_json: bool) -> int:
    """Run the named templates once (`rollout analyze`); exit 0 Successful, 1 Failed, 7 Inconclusive."""
    pairs = []
    for arg in args:
        name, sep, value = arg.partition("=")
        if not sep or not name:
            raise UserError(f"--arg {arg!r}: expected NAME=VALUE", ExitCode.INVALID)
        pairs.append({"name": name, "value": value})
    try:
        step = AnalysisStep.model_validate({"templates": [{"templateName": t} for t in templates], "args": pairs})
        resolve(rollout.spec.analysis.templates, step)
    except (ValueError, ValidationError) as error:
        raise UserError(f"analysis: {error}".splitlines()[0], ExitCode.INVALID) from None
    client = await connect()
    rid = f"analysis/{rollout.metadata.environment}/{rollout.metadata.name}/{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow(
        AnalysisRun.run, AnalyzeInput(rollout=rollout, requested_by=who(), analyze=step),
        id=rid, task_queue=task_queue, static_summary=f"analysis {', '.join(templates)}",
    )
    code = await follow(handle, timeout, quiet=as_json)
    if code == ExitCode.DEGRADED:
        status = await status_or_none(handle)
        if status is not None and status.reason == Reason.ANALYSIS_INCONCLUSIVE.value:
            return ExitCode.INCONCLUSIVE
    if not as_json:
        status = await status_or_none(handle)
        for metric in status.analysis if status else []:
            last = metric.measurements[-1] if metric.measurements else None
            print(f"  {metric.template}/{metric.name}: {metric.phase} ({metric.message})"
                  + (f" last: {last.value or last.message}" if last else ""))
    return code
