"""Approval policies (who may approve, how many, what they may choose, what happens when nobody does),
the decisions people send a rollout, and the audit trail of those decisions.

A policy's `approvers` are user names and `group:NAME` entries; groups are resolved by an activity
from `$DURABLE_ROLLOUTS_GROUPS` (a YAML file `{group: [user, ...]}`) or `ROLLOUT_GROUP_<NAME>` (a
comma-separated list), never from the spec, so membership is managed where people are.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field, ValidationInfo, model_validator

from models.documents import from_document
from models.durations import Duration
from models.identity import IdentityPolicy, IdentityRequirement
from models.specbase import DnsLabel, Message, SpecModel

GROUP = "group:"
CHOICE_ACTIONS = ("promote", "abort", "extend")


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def names_match(a: str, b: str, member: bool = False, emails: bool = True) -> bool:
    """Whether two names are one person's as people write them: equal, or equal but for the case of A-Z
    (no Unicode folding, which would make the account straße@ the account strasse@; Alice@bücher.de is
    alice@bücher.de). `member` (is the voter on
    the approvers list?): only two emails fold, and only when `emails` (the policy's names are emails, not
    case-sensitive `sub` values). Otherwise (refusals: self-approval, a second vote) any two names fold,
    and a login name matches an email with that local part — `alice`, who started the rollout, is the
    proven alice@example.com."""
    if a == b:
        return True
    fa, fb = a.translate(_ASCII_LOWER), b.translate(_ASCII_LOWER)  # A-Z only: every other character as written
    if member:
        return emails and "@" in a and "@" in b and fa == fb
    if fa == fb:
        return True
    return ("@" in a) != ("@" in b) and fa.partition("@")[0] == fb.partition("@")[0]


class ApprovalChoice(SpecModel):
    """One answer an approver can give, and what the rollout does when it is chosen."""

    name: DnsLabel = Field(description="what approvers send as `choice`, e.g. promote, rollback, extend-soak")
    action: Literal["promote", "abort", "extend"] = Field(
        description="promote: go on; abort: roll back (one vote suffices); extend: soak `duration` longer, then ask again"
    )
    duration: Duration | None = Field(None, description="extend: how long to soak before asking again")
    description: str = Field("", max_length=200)

    @model_validator(mode="after")
    def _check(self) -> ApprovalChoice:
        if self.action == "extend" and not self.duration:
            raise ValueError("@duration: an extend choice needs a duration")
        if self.action != "extend" and self.duration is not None:
            raise ValueError("@duration: only an extend choice has a duration")
        return self


DEFAULT_CHOICES = (
    ApprovalChoice(name="promote", action="promote", description="go on with the rollout"),
    ApprovalChoice(name="reject", action="abort", description="roll back"),
)


class ApprovalPolicy(SpecModel):
    """Who must approve, how many of them, and what happens while nobody does."""

    approvers: list[str] = Field(
        default_factory=list, max_length=100,
        description="user names and group:NAME entries; empty: anyone who says who they are",
    )
    min_approvals: int = Field(1, ge=1, le=20, description="distinct people who must choose the same answer")
    forbid_self_approval: bool = Field(False, description="the person (or CI actor) who started the rollout cannot approve")
    instructions: str = Field("", max_length=4000, description="markdown shown to approvers (status, Web UI)")
    choices: list[ApprovalChoice] = Field(default_factory=list, max_length=10,
                                          description="answers and their actions (default: promote, reject)")
    timeout: Duration | None = Field(None, description="how long to wait for a decision")
    on_timeout: Literal["abort", "promote", "wait"] = Field("wait", description="what the timeout does")
    remind_every: Duration | None = Field(None, description="send a reminder notification this often while waiting")
    identity: IdentityPolicy | None = Field(None, description="every vote must carry an OIDC ID token from this "
                                                                "issuer; it counts under the name the token proves")

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> ApprovalPolicy:
        if self.identity is not None and not self.approvers and from_document(info):
            raise ValueError("@approvers: an approval that requires an ID token must name who may vote (any "
                             "repository can get a token from an issuer like GitHub Actions)")
        for index, entry in enumerate(self.approvers):
            name = entry.removeprefix(GROUP)
            if not name.strip() or name != name.strip() or "," in name:
                raise ValueError(f"@approvers[{index}]: {entry!r} is not a user name or group:NAME")
        users = [a for a in self.approvers if not a.startswith(GROUP)]
        if len(set(self.approvers)) != len(self.approvers):
            raise ValueError("@approvers: an approver is listed twice")
        if self.approvers and len(users) == len(self.approvers) and self.min_approvals > len(users):
            raise ValueError(f"@minApprovals: {self.min_approvals} approvals needed but only {len(users)} approvers listed")
        names = [c.name for c in self.choices]
        if len(set(names)) != len(names):
            raise ValueError("@choices: two choices have the same name")
        if self.choices and not any(c.action == "promote" for c in self.choices):
            raise ValueError("@choices: at least one choice must promote")
        if self.on_timeout != "wait" and self.timeout is None:
            raise ValueError(f"@onTimeout: {self.on_timeout} needs a timeout")
        if self.timeout is not None and self.timeout <= timedelta(0):
            raise ValueError("@timeout: must be more than zero")
        if self.remind_every is not None and self.remind_every < timedelta(minutes=1):
            raise ValueError("@remindEvery: at least 1m")
        return self

    @property
    def answers(self) -> tuple[ApprovalChoice, ...]:
        return tuple(self.choices) or DEFAULT_CHOICES

    @property
    def groups(self) -> list[str]:
        return [a.removeprefix(GROUP) for a in self.approvers if a.startswith(GROUP)]

    @property
    def local_groups(self) -> list[str]:
        """The groups resolved here (activities/approvers.py); with `identity.groupsClaim` the ID token
        says who is in them, and the identity provider is where they are managed."""
        return [] if self.identity is not None and self.identity.groups_claim else self.groups

    def choice(self, name: str) -> ApprovalChoice | None:
        """The named answer; "" is the first that promotes (approve), "reject" falls back to the first abort."""
        answers = self.answers
        if not name:
            return next(c for c in answers if c.action == "promote")
        found = next((c for c in answers if c.name == name), None)
        if found is None and name == "reject":
            found = next((c for c in answers if c.action == "abort"), None)
        return found


class Approval(ApprovalPolicy):
    """An approval step: wait until the policy's approvers decide."""

    description: str = Field("", max_length=200, description="what the approver should check (one line)")


# ---- decisions: one message per decision, the same for the CLI's update and the Web UI's signal ------------

class Decision(Message):
    by: str = Field("", description="who decides (required, unless an ID token says it)")
    id_token: str = Field("", max_length=16384, repr=False,
                          description="an OIDC ID token proving who decides (an approval with `identity` needs one)")
    comment: str = Field("", max_length=1000)
    step: int | None = Field(None, ge=1, description="the step (1-based, as shown) this decision is meant for: "
                                                     "refused if the rollout is waiting elsewhere")


class ApproveRequest(Decision):
    """Approve the step waiting for approval (with `choice`: pick one of the policy's answers)."""

    choice: str = ""


class RejectRequest(Decision):
    """Reject the step waiting for approval: the rollout rolls back."""


class PromoteRequest(Decision):
    """Continue past the current pause; `full`: skip the remaining steps and promote now."""

    full: bool = False


class AbortRequest(Decision):
    """Send all traffic back to stable and stop."""

    reason: str = ""


class PauseRequest(Decision):
    """Hold the rollout at the next step boundary until resumed."""


class ResumeRequest(Decision):
    """Release a hold put on by `pause`."""


class SkipAnalysisRequest(Decision):
    """End the running analysis as successful (recorded as skipped)."""


class SetWeightRequest(Decision):
    """Canary: set the canary's traffic weight now, while paused (overrides until the next step)."""

    weight: int = Field(ge=0, le=100)


class HaltRequest(Decision):
    """A staged release: stop new installs now (the signed state says halted) until resumed."""


class RollbackRequest(Decision):
    """A staged release: go back to the previous release now (a new, higher metadata version that
    points at it with the downgrade sanctioned)."""

    reason: str = ""


DECISIONS: dict[str, type[Decision]] = {
    "approve": ApproveRequest,
    "reject": RejectRequest,
    "promote": PromoteRequest,
    "abort": AbortRequest,
    "pause": PauseRequest,
    "resume": ResumeRequest,
    "skipAnalysis": SkipAnalysisRequest,
    "setWeight": SetWeightRequest,
    "halt": HaltRequest,
    "rollback": RollbackRequest,
}


class DecisionRecord(Message):
    """The audit trail: every decision that reached the rollout, accepted or not."""

    at: datetime
    kind: str
    by: str
    source: Literal["cli", "web-ui", "webhook", "workflow"]
    step: int
    comment: str = ""
    detail: str = Field("", description="the choice, the weight, ...")
    accepted: bool = True
    why: str = Field("", description="why it was refused")
    verified: bool = Field(False, description="`by` is the name an ID token proved")
    token_sha256: str = Field("", description="the SHA-256 of the ID token that proved it (the token is kept nowhere)")
    token_key: str = Field("", description="the token's single-use key (models/identity.token_key)")
    token_expires: datetime | None = Field(None, description="until when the token could be used again (kept till then)")


class Vote(Message):
    by: str
    choice: str
    at: datetime
    comment: str = ""
    source: Literal["", "cli", "web-ui"] = ""
    verified: bool = False


class PendingApproval(Message):
    """The approval a rollout waits for: the policy as resolved, and the votes so far."""

    step: int
    description: str = ""
    instructions: str = ""
    approvers: list[str] = Field(default_factory=list, description="as the policy lists them")
    eligible: list[str] | None = Field(None, description="resolved user names; None: anyone who names themselves")
    min_approvals: int = 1
    forbid_self_approval: bool = False
    initiator: str = ""
    choices: list[str] = Field(default_factory=list)
    needs: dict[str, int] = Field(default_factory=dict, description="votes each choice needs (an abort: one)")
    votes: list[Vote] = Field(default_factory=list)
    opened_at: datetime | None = None
    timeout_at: datetime | None = None
    on_timeout: str = "wait"
    identity: IdentityRequirement | None = Field(None, description="what each vote's ID token must prove")
    decided: str = Field("", description="the choice that won, once decided")

    def tally(self, choice: str) -> int:
        return sum(1 for v in self.votes if v.choice == choice)
