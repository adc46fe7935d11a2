"""Waiting for an approval under its policy: who may vote (users, groups resolved by an activity), how
many must agree, self-approval, the choices and their actions, the timeout and its action, reminders.
The votes arrive through the decision handlers (workflows/decisions.py); this module opens the
approval, waits for it to be decided, and carries out the choice."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.approvers import ApproverActivities
    from activities.identity import IdentityActivities
    from models import names
    from models.approvals import ApprovalChoice, ApprovalPolicy, PendingApproval
    from models.durations import format_duration
    from models.identity import IdentityPolicy, IdentityRequirement, KeysRequest, SigningKeys
    from models.status import Phase, Reason
    from workflows import metrics
    from workflows.context import Control
    from workflows.continuation import ContinueAsNew
    from workflows.errors import ApprovalRejected, ApprovalTimedOut

KEYS_REFRESH = timedelta(hours=1)  # an issuer's keys are fetched again this often while an approval waits


async def resolve_groups(groups: list[str]) -> dict[str, list[str]]:
    """Group name -> members, read by an activity (a group nobody defined fails, non-retryable)."""
    return await workflow.execute_activity_method(
        ApproverActivities.resolve_groups, groups, summary=f"resolve approver groups {', '.join(groups)}",
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=RetryPolicy(maximum_attempts=5, non_retryable_error_types=["Invalid"]),
    )


async def signing_keys(identity: IdentityPolicy) -> SigningKeys:
    """The identity issuer's public keys (and the workers' sealing key), read by an activity."""
    return await workflow.execute_activity_method(
        IdentityActivities.fetch_signing_keys, KeysRequest(issuer=identity.issuer, jwks_uri=identity.jwks_uri),
        summary=f"fetch the signing keys of {identity.issuer}", start_to_close_timeout=timedelta(seconds=30),
        retry_policy=RetryPolicy(maximum_attempts=5, non_retryable_error_types=["Invalid"]),
    )


async def fetch_keys(control: Control, identity: IdentityPolicy, pending: PendingApproval) -> None:
    """The identity issuer's public keys, for the decision validators to check ID tokens against."""
    control.signing_keys = await signing_keys(identity)
    pending.identity = IdentityRequirement(issuer=identity.issuer, claim=identity.claim,
                                           audience=identity.audience_for(control.status.rollout_id),
                                           keys_fetched_at=workflow.now(), seal_key=control.signing_keys.seal_key)


async def await_approval(control: Control, index: int, policy: ApprovalPolicy, description: str) -> None:
    """Returns when the approval's choice is to go on; raises ApprovalRejected / ApprovalTimedOut (roll
    back) or RolloutAborted (an abort meanwhile)."""
    while True:
        eligible = None
        if policy.approvers:
            if policy.local_groups:
                control.groups = await resolve_groups(policy.local_groups)
            eligible = sorted({a for a in policy.approvers if not a.startswith("group:")}
                              | {m for g in policy.local_groups for m in control.groups.get(g, [])})
        now = workflow.now()
        resumed = control.take_resumed(index)
        pending = resumed.approval if resumed is not None and resumed.approval is not None else PendingApproval(
            step=index, description=description, instructions=policy.instructions, approvers=list(policy.approvers),
            eligible=eligible, min_approvals=policy.min_approvals, forbid_self_approval=policy.forbid_self_approval,
            initiator=control.initiator, choices=[c.name for c in policy.answers], opened_at=now,
            needs={c.name: 1 if c.action == "abort" else policy.min_approvals for c in policy.answers},
            timeout_at=now + policy.timeout if policy.timeout else None, on_timeout=policy.on_timeout,
        )
        if policy.identity is not None:
            await fetch_keys(control, policy.identity, pending)
        _open(control, pending, policy, reopened=resumed is not None and resumed.approval is pending)
        try:
            choice = await _decided(control, pending, policy)
        except ContinueAsNew as wait:  # the same approval, votes and all, goes on in the next run
            wait.approval = pending
            raise
        except (Exception, asyncio.CancelledError):  # not GeneratorExit (a coroutine closed when collected): no commands then
            _close(control)
            raise
        _close(control)
        if pending.opened_at is not None:
            metrics.approval_decided(control.status, (workflow.now() - pending.opened_at).total_seconds(), choice.action)
        voters = ", ".join(v.by for v in pending.votes if v.choice == choice.name) or "timeout"
        control.record("approval-decided", f"{choice.name} ({choice.action}) by {voters}", step=index)
        control.announce("approval-decided", "critical" if choice.action == "abort" else "info",
                         f"step {index + 1}: {choice.name} by {voters}")
        if choice.action == "promote":
            control.change_phase(Phase.PROGRESSING, message=f"step {index + 1}: {choice.name} by {voters}")
            return
        if choice.action == "abort":
            comments = "; ".join(v.comment for v in pending.votes if v.comment)
            raise ApprovalRejected(f"{choice.name} by {voters} at step {index + 1}{': ' + comments if comments else ''}")
        assert choice.duration is not None
        control.change_phase(Phase.PAUSED, Reason.SOAKING.value,
                          f"{choice.name} by {voters}: soaking {format_duration(choice.duration)} more, then asking again")
        control.status.paused_until = workflow.now() + choice.duration
        try:
            await control.sleep_unless_aborted(choice.duration, f"{choice.name} at step {index + 1}")
        finally:
            control.status.paused_until = None


def _open(control: Control, pending: PendingApproval, policy: ApprovalPolicy, reopened: bool = False) -> None:
    """Show the approval as awaited; `reopened`: the same approval carried into a new run (asked once)."""
    control.status.approval, control.approval_policy = pending, policy
    who = (f"{policy.min_approvals} of {', '.join(policy.approvers)}" if policy.approvers
           else "anyone who names themselves")
    if not reopened:
        control.record("approval-requested", f"{pending.description}: {who}", step=pending.step)
    workflow.upsert_search_attributes([names.ROLLOUT_AWAITING_APPROVAL.value_set(True)])
    control.change_phase(Phase.PAUSED, Reason.WAITING_FOR_APPROVAL.value, f"waiting for approval: {pending.description}")
    if not reopened:
        control.announce("approval-requested", "warning", _ask(control, pending))


def _close(control: Control) -> None:
    control.status.approval, control.approval_policy, control.signing_keys = None, None, None
    workflow.upsert_search_attributes([names.ROLLOUT_AWAITING_APPROVAL.value_set(False)])


def _ask(control: Control, pending: PendingApproval) -> str:
    s = control.status
    return (f"step {pending.step + 1} of {s.rollout_id} waits for approval ({pending.description}); "
            f"{len(pending.votes)}/{pending.min_approvals} so far. `rollout approve {s.rollout_id}`")


async def _decided(control: Control, pending: PendingApproval, policy: ApprovalPolicy) -> ApprovalChoice:
    """Wait for the votes to decide; reminders every `remindEvery`; the timeout's action."""
    every = policy.remind_every if control.notifier else None
    # on the approval's own schedule (opened + k × every), also when a new run takes the wait over
    next_reminder = pending.opened_at + every * ((workflow.now() - pending.opened_at) // every + 1) if every else None
    while True:
        refresh = pending.identity.keys_fetched_at + KEYS_REFRESH if pending.identity is not None else None
        wakes = [t for t in (next_reminder, pending.timeout_at, refresh) if t is not None]
        timeout = min(wakes) - workflow.now() if wakes else None
        if await control.wait_deciding(lambda: bool(pending.decided), timeout, f"approval at step {pending.step + 1}"):
            choice = policy.choice(pending.decided)
            assert choice is not None
            return choice
        now = workflow.now()
        if policy.identity is not None and refresh is not None and now >= refresh:  # keys rotate
            await fetch_keys(control, policy.identity, pending)
        if pending.timeout_at is not None and now >= pending.timeout_at:
            waited = format_duration(policy.timeout) if policy.timeout else ""
            control.record("approval-timed-out", f"after {waited}: {policy.on_timeout}", step=pending.step)
            if policy.on_timeout == "abort":
                raise ApprovalTimedOut(f"no decision on step {pending.step + 1} within {waited} (onTimeout: abort)")
            if policy.on_timeout == "promote":
                pending.decided = policy.choice("").name
                return policy.choice("")
            pending.timeout_at = None  # onTimeout: wait — keep waiting, without a deadline
            control.change_phase(Phase.PAUSED, Reason.WAITING_FOR_APPROVAL.value,
                              f"waiting for approval: {pending.description} (timed out after {waited}; still waiting)")
        if next_reminder is not None and now >= next_reminder:
            control.record("approval-reminder", f"{len(pending.votes)}/{pending.min_approvals} approvals so far",
                           step=pending.step)
            control.announce("approval-reminder", "warning", "reminder: " + _ask(control, pending))
            next_reminder = now + every
