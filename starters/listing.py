"""`rollout list`: rollouts, releases and pipelines by their search attributes (a visibility query)."""

from __future__ import annotations

import json

from models import names
from starters.commands import connect, normalise_id
from starters.exitcodes import ExitCode


async def list_rollouts(phase: str | None, environment: str | None, running_only: bool, as_json: bool,
                        strategy: str | None = None, awaiting_approval: bool = False, pipeline: str | None = None) -> int:
    client = await connect()
    clauses = ["RolloutName IS NOT NULL"]
    if phase:
        clauses.append(f"RolloutPhase = {json.dumps(phase)}")
    if environment:
        clauses.append(f"RolloutEnvironment = {json.dumps(environment)}")
    if strategy:
        clauses.append(f"RolloutStrategy = {json.dumps(strategy)}")
    if awaiting_approval:
        clauses.append("RolloutAwaitingApproval = true AND ExecutionStatus = 'Running'")
    if running_only:
        clauses.append("ExecutionStatus = 'Running'")
    if pipeline:
        clauses.append(f"RolloutPipeline = {json.dumps(normalise_id(pipeline))}")
    rows = []
    async for execution in client.list_workflows(" AND ".join(clauses)):
        sa = execution.typed_search_attributes
        rows.append(
            {
                "rolloutId": execution.id,
                "name": sa.get(names.ROLLOUT_NAME),
                "environment": sa.get(names.ROLLOUT_ENVIRONMENT),
                "strategy": sa.get(names.ROLLOUT_STRATEGY),
                "kind": sa.get(names.ROLLOUT_KIND) or ("Release" if sa.get(names.ROLLOUT_STRATEGY) == "staged" else "Rollout"),
                "pipeline": sa.get(names.ROLLOUT_PIPELINE) or "",
                "phase": sa.get(names.ROLLOUT_PHASE),
                "step": sa.get(names.ROLLOUT_STEP),
                "awaitingApproval": bool(sa.get(names.ROLLOUT_AWAITING_APPROVAL)),
                "execution": execution.status.name if execution.status else "",
                "startedAt": execution.start_time.isoformat() if execution.start_time else None,
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return ExitCode.OK
    print(f"{'ROLLOUT':<40} {'STRATEGY':<13} {'PHASE':<12} {'STEP':>4}  {'APPROVAL':<8} {'EXECUTION':<10} STARTED")
    for row in rows:
        print(
            f"{row['rolloutId']:<40} {row['strategy'] or '':<13} {row['phase'] or '':<12} "
            f"{(row['step'] or 0) + 1:>4}  {'waiting' if row['awaitingApproval'] else '':<8} {row['execution']:<10} "
            f"{row['startedAt'] or ''}"
        )
    return ExitCode.OK
