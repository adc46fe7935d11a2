"""Proving who started a run (models/starter.py) before anything changes: the starter's ID token checked
as a vote's is — the issuer's keys fetched by an activity, the token by the `verify_vote` local activity,
whose answer is all the history keeps — and held to `maxTokenAge` whatever its audience (it was minted for
this start, moments before it); the name it proves is recorded as the initiator. The token's single-use
key is kept in the status with the used votes' (workflows/decisions.py): it cannot vote. A token sealed
for a vote does not open as a start's, nor the other way round (activities/sealing.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.identity import IdentityActivities
    from models.identity import IdentityPolicy, VerifiedIdentity, VoteToVerify
    from models.starter import start_purpose, starter_identity
    from workflows.approval import signing_keys
    from workflows.context import Control

STARTER_PROVEN = "starter-proven"  # runs before it compared forbidSelfApproval with the recorded initiator


async def verify_start(identity: IdentityPolicy, token: str, rollout_id: str, document: Any) -> VerifiedIdentity | str:
    """Who the start's token proves (a run's start, a release train's submission of `document`), or why it
    proves no one. The token stays sealed here: the local activity opens it for this very document."""
    try:
        keys = await signing_keys(identity)
        answer = await workflow.execute_local_activity_method(
            IdentityActivities.verify_vote, VoteToVerify(token=token, policy=identity, rollout_id=rollout_id,
                                                         keys=keys, now=workflow.now(), start=True,
                                                         bound=start_purpose(document)),
            start_to_close_timeout=timedelta(seconds=10), retry_policy=RetryPolicy(maximum_attempts=3),
            summary="verify the starter's ID token")
    except ActivityError as error:
        cause = error.cause
        return f"the starter's ID token could not be checked: {getattr(cause, 'message', '') or error}"
    if answer.identity is None:
        return f"the starter's ID token does not prove who started: {answer.problem}"
    return answer.identity


async def prove_starter(control: Control, token: str, inherited: bool) -> str:
    """Empty when the run may go on (nothing to prove, proven by its parent pipeline, or proven now);
    otherwise why not, in one line (the run then ends before it changes anything)."""
    status = control.status
    try:
        wanted, problem = starter_identity(control.rollout), ""
    except ValueError as error:  # a running document read back from a history, from before the rule
        wanted, problem = None, str(error)
    # The patch is asked only where there is something to prove or check: its marker is in those runs alone.
    if not (wanted or problem or token.strip() or inherited) or not workflow.patched(STARTER_PROVEN):
        return ""
    if problem:
        return problem
    if inherited and workflow.info().parent is not None:  # the server's word: a workflow started this one
        status.initiator_proven = True
        return ""
    if wanted is None:
        return ""
    path, identity = wanted
    if not token.strip():
        return (f"{path} forbids self-approval under identity: the start must be proven by an ID token from "
                f"{identity.issuer} for audience {identity.audience_for(status.rollout_id)} (--id-token-file, "
                "$ROLLOUT_ID_TOKEN, or a CI job's OIDC token)")
    proven = await verify_start(identity, token, status.rollout_id, control.rollout)
    if isinstance(proven, str):
        return f"{proven} ({path})"
    control.initiator = status.initiator = proven.name
    status.initiator_proven, status.initiator_token_key = True, proven.token_key
    control.record("starter-proven", f"{identity.claim} {proven.name} ({identity.issuer})", by=proven.name)
    return ""
