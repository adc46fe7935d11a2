"""What people read: `rollout status ID [--watch]` as a live view in the spirit of
`kubectl argo rollouts get rollout --watch` (phase, the step list with the current one marked, weights
per version, analysis, the pending approval and who has approved), and `rollout history ID` (every
decision and step event)."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from models.status import Phase, RolloutStatus
from starters.commands import get_status, status_or_none, ui_link
from starters.exitcodes import ExitCode

ICON = {Phase.PROGRESSING: "◐", Phase.PAUSED: "‖", Phase.HEALTHY: "✔", Phase.DEGRADED: "✖"}


def _steps(s: RolloutStatus) -> list[str]:
    lines = []
    for index, text in enumerate(s.steps):
        if s.phase is Phase.HEALTHY or index < s.current_step:
            mark = "✔"
        elif index == s.current_step and not s.phase.finished:
            mark = "►"
        elif index == s.current_step:
            mark = "✖"
        else:
            mark = "○"
        lines.append(f"    {mark} {index + 1:>2}  {text}")
    return lines


def _versions(s: RolloutStatus) -> list[str]:
    if s.pipeline is not None:
        return []  # the bundle and where it runs: the tree below
    if s.strategy == "staged":
        e = s.exposure
        unit = {"devices": " of devices", "userFraction": " of users"}.get(
            e.unit, " of users" if s.target.startswith(("flagd:", "unleash:")) else "")
        source = f" ({e.source})" if e.source else ""  # e.g. Apple's phased release and its day
        return [f"  release    {s.image}" + (f"   (before: {s.stable_image})" if s.stable_image else ""),
                f"  exposure   desired {e.desired:g}%{unit} · the channel says {e.observed:g}%{source}"]
    if s.strategy in ("rollingUpdate", "recreate", "undo", "restart", "analysis"):
        return [f"  image      {s.image}" + (f"   (was {s.stable_image})" if s.stable_image and s.stable_image != s.image else "")]
    stable = 100 - s.canary_weight
    lines = [f"  stable     {s.stable_image or '?':<48} {stable:>3}%  {s.stable_replicas} pods"]
    if s.image != s.stable_image or s.canary_weight:
        lines.append(f"  new        {s.image:<48} {s.canary_weight:>3}%  {s.canary_replicas} pods"
                     + (f"  (actual {s.actual_weight:.0f}%)" if s.strategy == "canary" else ""))
    lines += [f"  route      {route}" for route in s.routes]
    return lines


def _approval(s: RolloutStatus) -> list[str]:
    a = s.approval
    if a is None:
        return []
    eligible = ", ".join(a.eligible) if a.eligible is not None else "anyone who names themselves"
    lines = [f"  approval   step {a.step + 1}: {a.description} · needs {a.min_approvals} · approvers: {eligible}"
             + (f" · not {a.initiator} (started it)" if a.forbid_self_approval and a.initiator else "")]
    if a.identity is not None:
        lines.append(f"             proof      ID token from {a.identity.issuer}, audience {a.identity.audience} "
                     f"(the vote counts under its {a.identity.claim})")
    for choice in a.choices:
        voters = [v.by + (" ✓" if v.verified else "") for v in a.votes if v.choice == choice]
        lines.append(f"             {choice:<14} {len(voters)}/{a.needs.get(choice, a.min_approvals)}  "
                     f"{', '.join(voters)}".rstrip())
    if a.timeout_at:
        lines.append(f"             times out {a.timeout_at:%Y-%m-%d %H:%M:%S} UTC → {a.on_timeout}")
    if a.instructions:
        lines += [f"             {line}" for line in a.instructions.strip().splitlines()]
    lines.append(f"             rollout approve {s.rollout_id} [--choice NAME]   |   rollout reject {s.rollout_id} --comment ...")
    return lines


def render(s: RolloutStatus, children: dict[str, RolloutStatus] | None = None) -> str:
    reason = f" ({s.reason})" if s.reason else ""
    lines = [
        f"{s.rollout_id}  {s.strategy}  {ICON[s.phase]} {s.phase.value}{reason}",
        f"  target     {s.target}" + (f"   started by {s.started_by}" if s.started_by else "")
        + (f"   run {s.runs} (a long wait continues as new)" if s.runs > 1 else ""),
        *_versions(s),
        f"  message    {s.message}",
    ]
    if s.steps:
        lines.append(f"  steps      {min(s.current_step + 1, s.total_steps)}/{s.total_steps}")
        lines += _steps(s)
    if s.pipeline is not None:
        from starters.pipeline import tree_lines

        lines += tree_lines(s, children or {})
    for metric in s.analysis:
        last = metric.measurements[-1] if metric.measurements else None
        lines.append(f"  analysis   {metric.template}/{metric.name} {metric.phase}: {metric.successful} ok, "
                     f"{metric.failed} failed, {metric.inconclusive} inconclusive, {metric.errors} errors"
                     + (f"; last {last.value or last.message}" if last else ""))
    lines += _approval(s)
    if s.held_by:
        lines.append(f"  held       by {s.held_by}: rollout resume {s.rollout_id}")
    if s.paused_until:
        lines.append(f"  until      {s.paused_until:%Y-%m-%d %H:%M:%S} UTC")
    if s.phase is Phase.PAUSED and s.paused_until is None and s.approval is None and not s.held_by:
        lines.append(f"  next       rollout promote {s.rollout_id}   |   rollout abort {s.rollout_id} --reason ...")
    for d in s.decisions[-5:]:
        fate = "accepted" if d.accepted else f"refused: {d.why}"
        detail = f" {d.detail}" if d.detail and d.accepted else ""
        lines.append(f"  decision   {d.at:%H:%M:%S} {d.kind} by {d.by} ({d.source}){detail} {fate}")
    lines.append(f"  web ui     {ui_link(s.rollout_id)}")
    return "\n".join(lines)


async def _children(s: RolloutStatus) -> dict[str, RolloutStatus]:
    if s.pipeline is None:
        return {}
    from starters.commands import connect
    from starters.pipeline import children_of

    return await children_of(await connect(), s)


async def status(rollout_id: str, as_json: bool, watch: bool, timeout: float) -> int:
    handle, current = await get_status(rollout_id)
    if not watch:
        print(current.model_dump_json(by_alias=True, indent=2) if as_json else render(current, await _children(current)))
        return ExitCode.OK
    live = sys.stdout.isatty() and not as_json
    deadline, shown = time.monotonic() + timeout, ""
    while True:
        text = current.model_dump_json(by_alias=True) if as_json else render(current, await _children(current))
        if text != shown:
            if live:
                print("\x1b[H\x1b[2J" + text, flush=True)
            else:
                print(text + ("" if as_json else "\n"), flush=True)
            shown = text
        if current.phase.finished:
            return ExitCode.OK if current.phase is Phase.HEALTHY else ExitCode.DEGRADED
        if time.monotonic() > deadline:
            print(f"timed out after {int(timeout)}s watching {rollout_id}", file=sys.stderr)
            return ExitCode.TIMEOUT
        await asyncio.sleep(1.0)
        current = await status_or_none(handle) or current


async def history(rollout_id: str, as_json: bool) -> int:
    _, s = await get_status(rollout_id)
    if as_json:
        print(json.dumps({"rolloutId": s.rollout_id,
                          "decisions": [d.model_dump(mode="json", by_alias=True) for d in s.decisions],
                          "history": [h.model_dump(mode="json", by_alias=True) for h in s.history]}, indent=2))
        return ExitCode.OK
    print(f"{s.rollout_id}: {len(s.decisions)} decisions")
    print(f"{'AT':<20} {'STEP':>4}  {'DECISION':<13} {'BY':<16} {'SOURCE':<7} {'FATE':<9} DETAIL")
    for d in s.decisions:
        fate = "accepted" if d.accepted else "refused"
        detail = "; ".join(x for x in (d.detail, d.comment, d.why) if x)
        print(f"{d.at:%Y-%m-%d %H:%M:%S} {d.step + 1:>4}  {d.kind:<13} {d.by:<16} {d.source:<7} {fate:<9} {detail}")
    print("\nevents")
    for h in s.history:
        step = "" if h.step is None else f"{min(h.step + 1, max(s.total_steps, 1))}"
        print(f"{h.at:%Y-%m-%d %H:%M:%S} {step:>4}  {h.event:<20} {h.detail}{' (by ' + h.by + ')' if h.by else ''}")
    return ExitCode.OK
