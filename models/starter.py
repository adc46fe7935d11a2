"""Who started a run, and what proves it.

`forbidSelfApproval` refuses the votes of the person who started a rollout (a release, a pipeline). Under
an approval that counts only votes proven by an ID token (`identity`), the voter's name is proven; so
must the starter's be, or the rule compares a proven name with whatever the CLI recorded
(`$ROLLOUT_USER`, a CI actor, a login name: anyone can set them). Such a run is started with an ID token
of the same issuer and audience (`starterToken`, sealed to the workers' key for this very document: a
vote's sealed token, or another document's start token, does not open there); the workflow checks it
before anything changes (workflows/starter.py) and records the name it proves as the initiator. A run started by a pipeline inherits the pipeline's proven
initiator — only as a child workflow, which the server says and a client cannot claim. Where no approval asks for identity the rule compares the recorded names and is
best-effort: the README says so.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import Field

from models.approvals import ApprovalPolicy
from models.identity import IdentityPolicy
from models.specbase import Message


class StartedBy(Message):
    """What every start's input says of who started it (a rollout's, a release's, a pipeline's)."""

    requested_by: str = ""
    initiator: str = Field("", description="the person behind the start when a pipeline or a train started this "
                                           "(forbidSelfApproval compares with it); empty: requested_by")
    starter_token: str = Field("", description="the starter's ID token, sealed to the workers' key for a start: "
                                               "proves who started when an approval forbids self-approval under "
                                               "identity (activities/sealing.py; never kept)")
    initiator_proven: bool = Field(False, description="set by a pipeline for its children: the initiator was "
                                                      "proven at the pipeline's start (honoured only in a child)")


def start_purpose(document: Any) -> str:
    """What a start's sealed token is bound to: this very document (its full SHA-256), so a start token read
    from one run's history opens for no other document (activities/sealing.py)."""
    return "start|" + hashlib.sha256(document.model_dump_json(by_alias=True).encode()).hexdigest()


def approvals_of(document: Any) -> list[tuple[str, ApprovalPolicy]]:
    """Every approval a run of the document (a Rollout, a Release, a Pipeline with its stages' rollouts) can
    wait for, with its field path."""
    spec = document.spec
    found = [(f"spec.{path}", policy) for path, policy in spec.approvals()]
    for index, stage in enumerate(getattr(spec, "stages", None) or []):
        if getattr(stage, "rollout", None) is not None:
            found += [(f"spec.stages[{index}].rollout.spec.{path}", policy)
                      for path, policy in stage.template().spec.approvals()]
    return found


def _proof(identity: IdentityPolicy) -> tuple:
    return identity.issuer, identity.claim, identity.audience, identity.jwks_uri, identity.max_token_age


def starter_identity(document: Any) -> tuple[str, IdentityPolicy] | None:
    """The identity the starter must prove (with the field path of the first approval asking for it):
    that of the approvals that forbid self-approval under identity. Raises ValueError naming the field
    when two of them ask for different ones (one token proves the starter once)."""
    wanting = [(path, policy.identity) for path, policy in approvals_of(document)
               if policy.forbid_self_approval and policy.identity is not None]
    if not wanting:
        return None
    path, first = wanting[0]
    for other, identity in wanting[1:]:
        if _proof(identity) != _proof(first):
            raise ValueError(f"{other}.identity: approvals that forbid self-approval must ask for one identity "
                             f"(issuer, claim, audience, jwksUri, maxTokenAge) as {path}.identity does: the starter "
                             "proves who they are once, with one ID token")
    return path, first
