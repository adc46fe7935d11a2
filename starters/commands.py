"""What the `rollout` commands do against Temporal: start, follow, status, promote, abort, list.

Each returns an exit code; user mistakes raise `UserError` (one line, its own exit code).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import re
import sys
import time
import uuid
from datetime import timedelta
from urllib.parse import quote

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    WorkflowIDConflictPolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from models import names
from models.approvals import Decision
from models.spec import Rollout
from models.status import AbortRequest, ControlResult, Phase, PromoteRequest, RevisionInput, RolloutInput, RolloutStatus
from models.targets import ObserveInput, TargetObservation
from starters.exitcodes import ExitCode, UserError
from workers import temporal
from workers.temporal import TemporalSettings

OBSERVE_TIMEOUT = 60  # seconds for a worker to read what the target runs (ROLLOUT_OBSERVE_TIMEOUT overrides)


def observe_timeout() -> float:
    raw = os.environ.get("ROLLOUT_OBSERVE_TIMEOUT", "")
    try:
        seconds = float(raw) if raw else OBSERVE_TIMEOUT
    except ValueError:
        seconds = 0
    if not 0 < seconds <= 3600:
        raise UserError(f"ROLLOUT_OBSERVE_TIMEOUT: {raw!r} is not a number of seconds between 0 and 3600")
    return seconds


async def connect() -> Client:
    settings = TemporalSettings.from_env()
    try:
        return await temporal.connect(settings)
    except RuntimeError as error:
        raise UserError(
            f"cannot reach Temporal at {settings.address} (TEMPORAL_ADDRESS): {str(error).splitlines()[0]}",
            ExitCode.UNAVAILABLE,
        ) from None


def ui_link(rollout_id: str) -> str:
    settings = TemporalSettings.from_env()
    return f"{settings.ui}/namespaces/{settings.namespace}/workflows/{quote(rollout_id, safe='')}"


def normalise_id(text: str) -> str:
    """Accept `rollout/prod/checkout-api` or the short `prod/checkout-api`; `pipeline/<env>/<name>`."""
    text = text.strip()
    parts = text.split("/")
    if len(parts) == 3 and parts[0] == "pipeline" and all(parts):
        return text
    if len(parts) == 2 and all(parts):
        return names.rollout_id(*parts)
    if len(parts) == 3 and parts[0] == "rollout" and all(parts):
        return text
    if len(parts) == 4 and parts[0] == "rollout" and (parts[3] == "window" or parts[3].isdigit()) and all(parts):
        return text  # a rollout's rollback window, or the n-th release of a release train
    raise UserError(f"rollout ID {text!r} is not like rollout/<environment>/<name>", ExitCode.INVALID)


# Who a CI system says started the job, in the order they are looked at.
CI_ACTORS = ("GITHUB_ACTOR", "GITLAB_USER_LOGIN", "BUILDKITE_BUILD_CREATOR_EMAIL", "CIRCLE_USERNAME", "BUILD_REQUESTEDFOR")


def who() -> str:
    """The person acting: $ROLLOUT_USER, else the CI actor (e.g. $GITHUB_ACTOR), else the login name."""
    for variable in ("ROLLOUT_USER", *CI_ACTORS):
        if os.environ.get(variable, "").strip():
            return os.environ[variable].strip()
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


async def start_workflow(client: Client, rollout: Rollout, task_queue: str, requested_by: str,
                         action: str = "rollout", to_revision: int = 0, starter_token: str = "") -> WorkflowHandle:
    """Start the strategy's workflow (or the undo/restart action's) with the rollout's ID and search
    attributes (raises if one runs); `starter_token`: sealed (starters/identity.starter_token)."""
    from workflows.strategies import ACTION_WORKFLOWS, STRATEGY_WORKFLOWS  # here: a command that starts nothing
    # does not import every workflow and the activities they name (kubernetes, boto3, tuf: half a second)

    workflow = STRATEGY_WORKFLOWS[rollout.spec.strategy.name] if action == "rollout" else ACTION_WORKFLOWS[action]
    kind = rollout.spec.strategy.name if action == "rollout" else action
    return await client.start_workflow(
        workflow.run,
        RolloutInput(rollout=rollout, requested_by=requested_by, starter_token=starter_token) if action == "rollout"
        else RevisionInput(rollout=rollout, requested_by=requested_by, action=action, to_revision=to_revision),
        **names.start_options(rollout, strategy=kind),
        task_queue=names.task_queue_for(task_queue, rollout.spec.target.family),  # its target's workers
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        static_summary=f"{kind} {rollout.spec.target.describe()}"
        + (f" → {rollout.spec.image}" if action == "rollout" else ""),
        static_details=static_details(rollout, requested_by) if action == "rollout" else None,
    )


def static_details(rollout: Rollout, requested_by: str) -> str:
    """The Web UI's summary at start: what will happen, step by step, and where people decide."""
    spec = rollout.spec
    lines = [f"**{rollout.metadata.name}** ({rollout.metadata.environment}) · {spec.strategy.name} · "
             f"`{spec.target.describe()}` → `{spec.image}` · started by {requested_by}", ""]
    lines += [f"{index + 1}. {text}" for index, text in enumerate(spec.step_descriptions())]
    for path, policy in spec.approvals():
        who = ", ".join(policy.approvers) or "anyone"
        lines.append(f"\nApproval `{path}`: {policy.min_approvals} of {who}"
                     + (" · no self-approval" if policy.forbid_self_approval else ""))
    lines.append("\nDecide with the signals `approve`, `reject`, `promote`, `abort`, `pause`, `resume` "
                 '(input like `{"by": "your-name"}`); the current details say which one is awaited.')
    return "\n".join(lines)


async def _close_window(client: Client, rollout_id: str, quiet: bool) -> None:
    """A new rollout of the same ID first closes the earlier one's rollback window (removes its warm copies)."""
    window = client.get_workflow_handle(names.window_id(rollout_id), result_type=RolloutStatus)
    try:
        if (await window.describe()).status != WorkflowExecutionStatus.RUNNING:
            return
        await window.execute_update("promote", PromoteRequest(by=who()))
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return
        raise
    except WorkflowUpdateFailedError:
        pass  # it is closing or switching back already: wait for it either way
    await window.result()
    if not quiet:
        print(f"closed the rollback window of {rollout_id}")


async def _already_healthy(client: Client, rollout: Rollout) -> RolloutStatus | None:
    """The last run of this rollout ID, if it ran this very spec and ended Healthy (a retried CI job)."""
    handle = client.get_workflow_handle(rollout.rollout_id, result_type=RolloutStatus)
    try:
        if (await handle.describe()).status != WorkflowExecutionStatus.COMPLETED:
            return None
        last: RolloutStatus = await handle.result()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    except Exception:  # noqa: BLE001 - a run that did not end with a status is not "already healthy"
        return None
    same = (last.spec_digest == rollout.digest() and last.phase is Phase.HEALTHY
            and last.strategy == rollout.spec.strategy.name)  # not an undo or restart run of the same spec
    return last if same else None


async def observe(client: Client, rollout: Rollout, task_queue: str) -> TargetObservation:
    """What the rollout's target runs now, read by the worker (which holds the target's credentials)."""
    from workflows.observe import ObserveTarget  # here, as in start_workflow

    return await client.execute_workflow(
        ObserveTarget.run, ObserveInput(target=rollout.spec.target), id=f"{rollout.rollout_id}/observe/{uuid.uuid4().hex[:8]}",
        task_queue=names.task_queue_for(task_queue, rollout.spec.target.family),
        execution_timeout=timedelta(seconds=observe_timeout()), result_type=TargetObservation,
    )


async def start(rollout: Rollout, wait: bool, timeout: float, task_queue: str, as_json: bool, again: bool = False,
                id_token_file: str | None = None) -> int:
    """Start a rollout. The same spec started twice (a CI retry) gives one rollout: the second start
    follows the running one; when the last run of this very spec ended Healthy, the target is asked what
    it runs now — still that version: nothing is started; changed since (rolled back, or another
    version put on it): a new run puts the spec's version back (`--again` starts anew regardless)."""
    from starters.identity import starter_token

    token = starter_token(rollout, id_token_file)  # before anything is asked or changed
    client = await connect()
    rid = rollout.rollout_id
    if not again:
        done = await _already_healthy(client, rollout)
        if done is not None:
            drift = await _drift(client, rollout, task_queue)
            ended = f"{rid} already ran this very spec and ended Healthy at {done.finished_at:%Y-%m-%d %H:%M:%S} UTC"
            if not drift.startswith("!"):
                if as_json:
                    print(done.model_dump_json(by_alias=True))
                else:
                    print(f"{ended}; checked just now: {drift}; not started again (--again to run it anew)")
                return ExitCode.OK
            print(f"{ended}, but {drift[1:]}: starting it anew", flush=True, file=sys.stderr if as_json else sys.stdout)
    await _close_window(client, rid, as_json)
    try:
        handle = await start_workflow(client, rollout, task_queue, who(), starter_token=token)
    except WorkflowAlreadyStartedError:
        current = await status_or_none(client.get_workflow_handle(rid))
        if current is not None and current.spec_digest == rollout.digest():
            if not as_json:
                print(f"{rid} is already running this very spec (started by {current.started_by}): following it")
            return await _started(client.get_workflow_handle(rid, result_type=RolloutStatus), wait, timeout, as_json)
        if current is not None and current.strategy != rollout.spec.strategy.name:
            raise UserError(
                f"rollout {rid} is running as {current.strategy}: changing its strategy to "
                f"{rollout.spec.strategy.name} in flight is refused; let it finish or "
                f"`rollout abort {rid} --reason ...` first",
                ExitCode.CONFLICT,
            ) from None
        if rollout.spec.concurrency_policy != "supersede":
            where = f" (phase {current.phase.value}, step {current.current_step + 1})" if current else ""
            raise UserError(
                f"rollout {rid} is already running{where}: wait for it or `rollout abort {rid} --reason ...`"
                " (or declare spec.concurrencyPolicy: supersede)",
                ExitCode.CONFLICT,
            ) from None
        await _supersede(client.get_workflow_handle(rid, result_type=RolloutStatus), rollout.spec.image, as_json)
        handle = await start_workflow(client, rollout, task_queue, who(), starter_token=token)
    return await _started(handle, wait, timeout, as_json)


READ_ROUNDS = 3  # ObserveTarget asked this many times before a target counts as unread (or, unsettled, drifted)
GONE = ("NotFound",)  # the observer's word that the target is not there: a drift a new run puts right


class TargetUnread(UserError):
    """A re-run's check could not read a target: whether it drifted is unknown, so nothing is started."""

    def __init__(self, rollout_id: str, why: str):
        self.why = why
        super().__init__(f"{rollout_id}: {why}, {READ_ROUNDS} times; nothing started: run it again, or --again to "
                         "start anew", ExitCode.UNREAD)


def _innermost(error: BaseException) -> BaseException:
    """The deepest cause of a failed workflow: the activity's own ApplicationError, or a TimeoutError."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return error


async def _drift(client: Client, rollout: Rollout, task_queue: str, zero_is_fine: bool = True) -> str:
    """How the target compares with the spec now: a description, with a leading "!" when it no longer runs
    the spec's version as it was left, or is not there at all (the observer says NotFound); a new run is then
    the answer. A read that fails otherwise (no answer in time, retries used up, access refused) or a target
    on the version but not settled is asked again; still unread: `TargetUnread` (a busy worker or expired
    credentials are no reason to deliver again and ask every gate again); still unsettled: a drift."""
    why = ""
    for _ in range(READ_ROUNDS):
        try:
            seen = await observe(client, rollout, task_queue)
        except WorkflowFailureError as error:
            cause = _innermost(error)
            message = getattr(cause, "message", None) or str(cause or error)
            if isinstance(cause, ApplicationError) and cause.type in GONE:
                return f"!its target is not there ({message})"
            why = f"what its target runs could not be read ({message})"
            continue
        except RPCError as error:  # the ObserveTarget start itself not answered in time
            if error.status not in ASK_AGAIN:
                raise
            why = f"what its target runs could not be read ({error.message})"
            continue
        if seen.version != rollout.spec.image:
            return f"!{seen.target} now runs {seen.version} ({seen.detail}), not {rollout.spec.image}"
        if seen.instances == 0 and not zero_is_fine:
            return f"!{seen.target} runs no pod of {seen.version} ({seen.detail})"
        if seen.ready:
            return f"{seen.target} runs {seen.version} ({seen.detail})"
        why = f"!{seen.target} runs {seen.version} but is not settled ({seen.detail})"
    if why.startswith("!"):
        return why
    raise TargetUnread(rollout.rollout_id, why)


async def _supersede(running: WorkflowHandle, image: str, quiet: bool) -> None:
    """concurrencyPolicy: supersede — abort the running rollout through its normal abort path, wait for it."""
    try:
        await running.execute_update("abort", AbortRequest(reason=f"superseded by {image}", by=who()))
    except WorkflowUpdateFailedError:
        pass  # it is already aborting or finishing: wait for it either way
    ended: RolloutStatus = await running.result()
    if not quiet:
        print(f"superseded {running.id}: the running rollout ended {ended.phase.value} {ended.reason}".rstrip())


async def _started(handle: WorkflowHandle, wait: bool, timeout: float, as_json: bool) -> int:
    rid = handle.id
    if not as_json:
        print(f"started {rid}")
        print(f"web ui: {ui_link(rid)}")
    else:
        print(json.dumps({"rolloutId": rid, "runId": handle.result_run_id, "webUi": ui_link(rid)}))
    if not wait:
        return ExitCode.OK
    return await follow(handle, timeout, quiet=as_json)


# a query the worker did not answer in time (busy, restarting, its task failing): no answer yet, not a fault
ASK_AGAIN = (RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNAVAILABLE,
             RPCStatusCode.FAILED_PRECONDITION)


async def follow(handle: WorkflowHandle, timeout: float, quiet: bool = False) -> int:
    """Print history lines as they appear until the rollout finishes; exit code from its phase."""
    deadline = time.monotonic() + timeout
    shown = 0
    hinted = stuck = False
    while True:
        try:
            status = await status_or_none(handle)
        except RPCError as error:  # a query the worker did not answer in time (busy, restarting): ask again
            if error.status == RPCStatusCode.FAILED_PRECONDITION and not stuck:  # its workflow task keeps failing
                print(f"{handle.id}: its workflow task fails on the worker ({error.message}); the worker's log says why "
                      "— still waiting", file=sys.stderr)
                stuck = True
            elif error.status not in ASK_AGAIN:
                raise
            status = None
        if status is not None:
            for entry in status.history[shown:]:
                if not quiet:
                    print(_history_line(status, entry), flush=True)
            shown = len(status.history)
            if status.phase is Phase.PAUSED and status.paused_until is None and not hinted and not quiet:
                verb = "approval: rollout approve" if status.approval is not None else "promote: rollout promote"
                print(f"  waiting for {verb} {status.rollout_id}   (web ui: {ui_link(status.rollout_id)})")
                hinted = True
            if status.phase is not Phase.PAUSED:
                hinted = False
            if status.phase.finished:
                if quiet:
                    print(status.model_dump_json(by_alias=True))
                else:
                    print(f"{status.rollout_id}: {status.phase.value} {status.reason} {status.message}".rstrip())
                return ExitCode.OK if status.phase is Phase.HEALTHY else ExitCode.DEGRADED
        if time.monotonic() > deadline:
            print(f"timed out after {int(timeout)}s waiting for {handle.id}", file=sys.stderr)
            return ExitCode.TIMEOUT
        await asyncio.sleep(0.5)


def _history_line(status: RolloutStatus, entry) -> str:
    step = "" if entry.step is None else f"step {min(entry.step + 1, status.total_steps)}/{status.total_steps}"
    by = f" (by {entry.by})" if entry.by else ""
    return f"{entry.at:%H:%M:%S}  {step:<10} {entry.event:<16} {entry.detail}{by}"


async def status_or_none(handle: WorkflowHandle, tries: int = 3) -> RolloutStatus | None:
    """The rollout's status (None: no such rollout); a query a busy worker did not answer is asked again."""
    for attempt in range(1, tries + 1):
        try:
            return await handle.query("status", result_type=RolloutStatus)
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return None
            if attempt == tries or error.status not in ASK_AGAIN[:3]:  # not FAILED_PRECONDITION: a failing task
                raise
            await asyncio.sleep(1)
    raise AssertionError("unreachable")


async def get_status(rollout_id: str) -> tuple[WorkflowHandle, RolloutStatus]:
    client = await connect()
    handle = client.get_workflow_handle(rollout_id)
    try:
        status = await handle.query("status", result_type=RolloutStatus)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise UserError(f"no rollout {rollout_id}", ExitCode.NOT_FOUND) from None
        raise
    return handle, status


async def control(rollout_id: str, action: str, request: Decision) -> int:
    """Send one decision as an update: the workflow's validator refuses a wrong one before anything is
    written (exit 2 for what the decision says — who, choice, reason —, 5 for the rollout's state)."""
    handle, status = await get_status(rollout_id)
    needs_proof = status.approval.identity if status.approval is not None else None
    if action in ("approve", "reject") and needs_proof is not None:
        from starters.identity import ci_token, sealed

        request = request.model_copy(update={"id_token": sealed(request.id_token or ci_token(needs_proof), needs_proof)})
    try:
        result = await handle.execute_update(action, request, result_type=ControlResult)
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        message = cause.message if cause is not None and hasattr(cause, "message") else str(error)
        code = ExitCode.INVALID if getattr(cause, "type", "") == "InvalidDecision" else ExitCode.CONFLICT
        known = re.search(r"Update handler for '.*' expected but not found.*known updates: \[(.*)\]", message)
        if known:  # the workflow carries no such decision (e.g. setWeight on a blue-green)
            takes = ", ".join(sorted(name.strip("'\"") for name in re.split(r"[,\s]+", known.group(1)) if name.strip("'\"")))
            message, code = f"a {status.strategy} rollout has no {action} decision (it takes: {takes})", ExitCode.INVALID
        raise UserError(f"{action} refused for {rollout_id}: {message}", code) from None
    except RPCError as error:
        if "workflow execution already completed" in str(error).lower():
            raise UserError(f"{action} refused for {rollout_id}: rollout already finished", ExitCode.CONFLICT) from None
        raise
    print(f"{action}: {rollout_id} ({result.message}; phase {result.phase.value}, step {result.current_step + 1})")
    return ExitCode.OK


async def setup() -> int:
    """Register our search attributes on an existing server (the dev server gets them at start)."""
    client = await connect()
    namespace = TemporalSettings.from_env().namespace
    added = await temporal.ensure_search_attributes(client, namespace)
    print(f"search attributes in {namespace}: " + (f"added {', '.join(added)}" if added else "all present"))
    return ExitCode.OK
