"""The Web UI's "current details" of a rollout: what it does now, what it waits for, and the exact
signal (name and JSON to paste) or CLI command that moves it on."""

from __future__ import annotations

import json

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.approvals import PendingApproval
    from models.status import Phase, Reason, RolloutStatus


def _signal(name: str, payload: dict) -> str:
    return f"Send a Signal `{name}` with input `{json.dumps(payload)}`"


def _approval(s: RolloutStatus, a: PendingApproval) -> list[str]:
    who = ", ".join(a.approvers) if a.approvers else "anyone (say who you are in `by`)"
    votes = "; ".join(f"{v.by}: {v.choice}" for v in a.votes) or "none yet"
    lines = [
        f"### Waiting for approval: step {a.step + 1}{' — ' + a.description if a.description else ''}",
        f"Approvers: {who} · needs **{a.min_approvals}** · votes: {votes}"
        + (" · the initiator cannot approve" if a.forbid_self_approval else "")
        + (f" · times out {a.timeout_at:%Y-%m-%d %H:%M} UTC ({a.on_timeout})" if a.timeout_at else ""),
    ]
    if a.instructions:
        lines.append(a.instructions)
    proof = {}
    if a.identity is not None:
        lines.append(f"Votes count only with an ID token from {a.identity.issuer} (audience `{a.identity.audience}`), "
                     f"under the {a.identity.claim} it proves: paste the token as `idToken`")
        proof = {"idToken": "<your ID token>"}
    for choice in a.choices:
        payload = {"by": "your-name", "choice": choice, "comment": "", "step": a.step + 1, **proof}
        lines.append(f"- **{choice}**: CLI `rollout approve {s.rollout_id} --choice {choice}` · Web UI: "
                     + _signal("approve", payload))
    if "reject" not in a.choices:
        lines.append(f"- reject: CLI `rollout reject {s.rollout_id} --comment \"why\"` · Web UI: "
                     + _signal("reject", {"by": "your-name", "comment": "why", "step": a.step + 1, **proof}))
    return lines


def details(s: RolloutStatus) -> str:
    weight = {
        "canary": f" · canary weight {s.canary_weight}%",
        "abTest": f" · canary weight {s.canary_weight}%",
        "blueGreen": f" · active: {'preview (new)' if s.canary_weight else 'previous'}",
        "staged": f" · exposure {s.exposure.desired:g}% (the channel says {s.exposure.observed:g}%)",
    }.get(s.strategy, "")
    head = (
        f"**{s.name}** ({s.environment}) · {s.strategy} → `{s.image}`\n\n"
        f"**{s.phase.value}**{' · ' + s.reason if s.reason else ''} · step "
        f"{min(s.current_step + 1, s.total_steps)} of {s.total_steps}{weight}\n\n{s.message}"
    )
    if s.phase.finished:
        return head
    rid = s.rollout_id
    lines = [head]
    if s.approval is not None and not s.approval.decided:
        lines += _approval(s, s.approval)
    elif s.reason == Reason.HALTED.value:
        lines.append(f"**Halted by {s.held_by}: no new installs.** Go on with the same devices: CLI `rollout resume "
                     f"{rid}` · Web UI: " + _signal("resume", {"by": "your-name"}))
        lines.append(f"Go back to the previous release: CLI `rollout rollback {rid} --reason \"...\"` · Web UI: "
                     + _signal("rollback", {"reason": "why", "by": "your-name"}))
    elif s.reason == Reason.BAKING.value:
        until = f" until {s.paused_until:%Y-%m-%d %H:%M} UTC" if s.paused_until else ""
        lines.append(f"**Baking{until}.** End it now: CLI `rollout promote {rid}` · Web UI: "
                     + _signal("promote", {"by": "your-name"}) + f". Stop new installs: `rollout halt {rid}` · "
                     + _signal("halt", {"by": "your-name", "comment": "why"}))
    elif s.reason == Reason.PAUSED_BY_USER.value:
        lines.append(f"**Held by {s.held_by}.** CLI: `rollout resume {rid}` · Web UI: "
                     + _signal("resume", {"by": "your-name"}))
    elif s.phase is Phase.PAUSED and s.paused_until is None:
        lines.append(f"**Waiting for promote.** CLI: `rollout promote {rid}` · Web UI: "
                     + _signal("promote", {"by": "your-name"}))
    lines.append(f"To abort: `rollout abort {rid} --reason \"...\"` · Web UI: "
                 + _signal("abort", {"reason": "why", "by": "your-name"}))
    return "\n\n".join(lines)
