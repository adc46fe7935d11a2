"""`rollout pipeline start|summary` and the pipeline's tree in `rollout status`.

A start is safe to repeat (a CI job re-run): the same document while its pipeline runs attaches to it
(and follows it with `--wait`); another document while one runs follows `spec.concurrencyPolicy`
(reject: exit 5; supersede: abort it through its abort path, wait until its targets are back, start).
The same document after its last run ended Healthy is not run again (the bundle is delivered; a new run
would ask for its approvals and soaks again): `--again` does. After a Degraded end, a start runs anew.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import (
    WorkflowIDConflictPolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from models import names
from models.documents import SpecError
from models.kinds import load_kind
from models.pipeline import Pipeline, PipelineInput
from models.status import AbortRequest, Phase, RolloutStatus
from starters.commands import TargetUnread, _drift, _started, connect, status_or_none, ui_link, who
from starters.exitcodes import ExitCode, UserError
from starters.identity import add_start_token, starter_token

ICON = {"pending": "○", "gate": "‖", "running": "►", "verified": "✔", "failed": "✖", "aborted": "✖",
        "rolledBack": "↶", "rollbackFailed": "✖", "skipped": "-", "done": "✔"}


def load(path: str, command: str) -> Pipeline:
    try:
        return load_kind(path, ("Pipeline",), command)
    except SpecError as error:
        raise UserError("\n".join(f"{error.source}: {p}" for p in error.problems), ExitCode.INVALID) from None


def describe(pipeline: Pipeline) -> str:
    return f"valid pipeline {pipeline.rollout_id}: {pipeline.target_description}, {len(pipeline.spec.plan())} steps"


async def start_pipeline(client: Client, pipeline: Pipeline, task_queue: str, requested_by: str,
                         starter_token: str = "") -> WorkflowHandle:
    from workflows.pipeline import PipelineRun  # here: a command that starts nothing does not import the workflows

    steps = "\n".join(f"{i + 1}. {text}" for i, text in enumerate(pipeline.spec.step_descriptions()))
    return await client.start_workflow(
        PipelineRun.run, PipelineInput(pipeline=pipeline, requested_by=requested_by, starter_token=starter_token),
        **names.start_options(pipeline), task_queue=task_queue, result_type=RolloutStatus,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        static_summary=f"pipeline {pipeline.target_description} → {pipeline.version}",
        static_details=f"**{pipeline.metadata.name}** ({pipeline.metadata.environment}) · started by {requested_by}\n\n"
                       + steps)


async def start(pipeline: Pipeline, wait: bool, timeout: float, task_queue: str, as_json: bool,
                again: bool = False, id_token_file: str | None = None) -> int:
    token = starter_token(pipeline, id_token_file)  # before anything is asked or started
    client = await connect()
    pid = pipeline.rollout_id
    last = None if again else await status_or_none(client.get_workflow_handle(pid))
    if last is not None and last.phase is Phase.HEALTHY and last.spec_digest == pipeline.digest():
        # A re-run CI job after the pipeline finished: the bundle is delivered — if every target still runs
        # it (each read just now, as `rollout start` reads its target); asking again for approvals and soaks
        # would be a new delivery (--again). A target that drifted since: a new delivery puts it back.
        ended = f"{pid} already delivered this very bundle (Healthy at {last.finished_at:%Y-%m-%d %H:%M:%S} UTC)"
        drifted = await _drifted(client, pipeline, last, task_queue)
        if not drifted:
            verified = sum(t.state == "verified" for s in last.pipeline.stages for w in s.waves for t in w.targets)
            if as_json:
                print(last.model_dump_json(by_alias=True))
            else:
                print(f"{ended}; checked just now: its {verified} verified targets run it; not started "
                      "again (--again to run it anew)")
            return ExitCode.OK
        print(f"{ended}, but {drifted[0]}{f' (and {len(drifted) - 1} more)' if len(drifted) > 1 else ''}: "
              "delivering it anew", flush=True, file=sys.stderr if as_json else sys.stdout)
    try:
        handle = await start_pipeline(client, pipeline, task_queue, who(), token)
    except WorkflowAlreadyStartedError:
        running = client.get_workflow_handle(pid, result_type=RolloutStatus)
        current = await status_or_none(running)
        if current is not None and current.spec_digest == pipeline.digest():
            if not as_json:
                print(f"{pid} is already running this very bundle (started by {current.started_by}): following it")
            return await _started(running, wait, timeout, as_json)
        if pipeline.spec.concurrency_policy != "supersede":
            where = f" (phase {current.phase.value}, step {current.current_step + 1})" if current else ""
            raise UserError(f"pipeline {pid} is running another bundle{where}: wait for it, `rollout abort {pid} "
                            "--reason ...`, or declare spec.concurrencyPolicy: supersede", ExitCode.CONFLICT) from None
        try:
            await running.execute_update("abort", AbortRequest(reason=f"superseded by {pipeline.version}", by=who()))
        except WorkflowUpdateFailedError:
            pass  # already ending: wait for it either way
        ended = await running.result()
        if not as_json:
            print(f"superseded {pid}: it ended {ended.phase.value} {ended.reason}".rstrip())
        handle = await start_pipeline(client, pipeline, task_queue, who(), token)
    return await _started(handle, wait, timeout, as_json)


async def _drifted(client: Client, pipeline: Pipeline, last: RolloutStatus, task_queue: str) -> list[str]:
    """Each target of the delivered bundle read now (ObserveTarget, together): those no longer running
    their stage's pinned image settled, described; a target that is not there counts as drifted; one that could
    not be read refuses the start (`TargetUnread`) unless another one drifted (commands._drift)."""
    checks = [(stage, stage.rollout_for(target, state.image, pipeline.rollout_id))
              for stage, state in zip(pipeline.spec.stages, last.pipeline.stages, strict=True)
              for target, ts in zip(stage.targets, [t for w in state.waves for t in w.targets], strict=True)
              if ts.state == "verified"]  # a failure maxFailures tolerated is not redelivered by a re-run
    seen = await asyncio.gather(*(_drift(client, rollout, task_queue, stage.allow_zero_replicas)
                                  for stage, rollout in checks), return_exceptions=True)
    for what in seen:
        if isinstance(what, BaseException) and not isinstance(what, TargetUnread):
            raise what
    drifted = [what[1:] for what in seen if isinstance(what, str) and what.startswith("!")]
    unread = [what for what in seen if isinstance(what, TargetUnread)]
    if unread and not drifted:  # one drift is reason enough to deliver; unread alone says nothing
        raise TargetUnread(pipeline.rollout_id, f"{len(unread)} of its {len(checks)} verified targets could not be "
                           f"read (the first: {unread[0].why})")
    return drifted


def tree_lines(s: RolloutStatus, children: dict[str, RolloutStatus]) -> list[str]:
    """stage → wave → target → the target's own step, for `rollout status`."""
    tree = s.pipeline
    if tree is None:
        return []
    lines = [f"  bundle     {name}: {image}" for name, image in tree.bundle.items()]
    for stage in tree.stages:
        lines.append(f"  {ICON.get(stage.state, '?')} stage {stage.name:<12} {stage.state}"
                     + (f"   verified {stage.verified_at:%Y-%m-%d %H:%M:%S} UTC" if stage.verified_at else ""))
        for check in stage.checks:
            lines.append(f"      check {check.name}: {check.phase} {check.value or check.message}".rstrip())
        for wave in stage.waves:
            lines.append(f"      {ICON.get(wave.state, '?')} {wave.name} ({wave.state})")
            for t in wave.targets:
                where = t.context + (f" [{t.region}]" if t.region else "")
                line = f"          {ICON.get(t.state, '?')} {where:<22} {t.state:<14}"
                child = children.get(t.workflow_id)
                if t.state == "running" and child is not None:
                    step = child.steps[child.current_step] if child.current_step < len(child.steps) else ""
                    line += f" step {min(child.current_step + 1, child.total_steps)}/{child.total_steps} {step} " \
                            f"({child.phase.value})"
                elif t.state == "verified":
                    line += f" on {t.verified_revision.rsplit('@', 1)[-1][:19]}"
                elif t.reason or t.message:
                    line += f" {t.reason}: {t.message}"
                lines.append(line.rstrip() + (f"   {t.workflow_id}" if t.workflow_id else ""))
    return lines


async def children_of(client: Client, s: RolloutStatus) -> dict[str, RolloutStatus]:
    """The status of every running target's rollout (each its own workflow)."""
    found = {}
    for stage in s.pipeline.stages if s.pipeline else []:
        for wave in stage.waves:
            for t in wave.targets:
                if t.state == "running" and t.workflow_id:
                    child = await status_or_none(client.get_workflow_handle(t.workflow_id))
                    if child is not None:
                        found[t.workflow_id] = child
    return found


def markdown(s: RolloutStatus) -> str:
    """A Markdown summary of a pipeline's status (for $GITHUB_STEP_SUMMARY)."""
    mark = {"verified": "✅", "failed": "❌", "aborted": "❌", "rolledBack": "↩️", "rollbackFailed": "❌",
            "running": "⏳", "pending": "⏸️", "skipped": "➖"}
    lines = [f"### {s.rollout_id}: {s.phase.value}" + (f" ({s.reason})" if s.reason else ""), "",
             f"{s.message}", "", f"Bundle: {', '.join(f'`{i}`' for i in (s.pipeline.bundle.values() if s.pipeline else []))}",
             "", "| stage | wave | target | state | revision / reason |", "|---|---|---|---|---|"]
    for stage in s.pipeline.stages if s.pipeline else []:
        for wave in stage.waves:
            for t in wave.targets:
                detail = f"`{t.verified_revision.rsplit('@', 1)[-1][:19]}`" if t.state == "verified" else \
                    f"{t.reason} {t.message}".strip().replace("|", "\\|")
                lines.append(f"| {stage.name} | {wave.name} | {t.context}{' (' + t.region + ')' if t.region else ''} "
                             f"| {mark.get(t.state, '')} {t.state} | {detail} |")
    lines += ["", f"[Temporal Web UI]({ui_link(s.rollout_id)})"]
    return "\n".join(lines)


def summary(source: str) -> int:
    """`rollout pipeline summary FILE|-`: the Markdown of a `--json` result (the last JSON line)."""
    text = sys.stdin.read() if source == "-" else Path(source).read_text()
    line = next((ln for ln in reversed(text.strip().splitlines()) if ln.startswith("{") and '"pipeline"' in ln), "")
    if not line:
        raise UserError(f"{source}: no pipeline status in it (the JSON `rollout pipeline start --json --wait` prints)",
                        ExitCode.INVALID)
    try:
        status = RolloutStatus.model_validate(json.loads(line))
    except ValueError as error:
        raise UserError(f"{source}: not a pipeline status: {str(error).splitlines()[0]}", ExitCode.INVALID) from None
    print(markdown(status))
    return ExitCode.OK


def add_parser(sub) -> None:
    p = sub.add_parser("pipeline", help="pipelines: one bundle through stages (dev → staging → prod) in waves")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("start", help="start a pipeline (the same file again attaches to its run)")
    a.add_argument("-f", "--file", required=True)
    a.add_argument("--wait", action="store_true", help="follow until it ends; exit 0 Healthy, 1 Degraded, 3 timeout")
    a.add_argument("--timeout", type=float, default=6 * 3600)
    a.add_argument("--json", action="store_true", help="print the start, and with --wait the final status, as JSON")
    a.add_argument("--task-queue", default=os.environ.get("ROLLOUT_TASK_QUEUE", names.TASK_QUEUE))
    a.add_argument("--again", action="store_true", help="run it anew even if this very file was delivered")
    add_start_token(a)
    a = actions.add_parser("validate", help="validate a pipeline (and the rollout files it names); nothing starts")
    a.add_argument("-f", "--file", required=True)
    a = actions.add_parser("summary", help="Markdown of a `start --wait --json` result (for $GITHUB_STEP_SUMMARY)")
    a.add_argument("source", metavar="FILE", help="the saved JSON output, or - for standard input")


def run(args: argparse.Namespace) -> int:
    if args.action == "summary":
        return summary(args.source)
    pipeline = load(args.file, f"rollout pipeline {args.action} -f")
    if args.action == "validate":
        print(f"{args.file}: {describe(pipeline)}")
        return ExitCode.OK
    return asyncio.run(start(pipeline, args.wait, args.timeout, args.task_queue, args.json, args.again,
                             args.id_token_file))
