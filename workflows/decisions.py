"""The decisions people send a rollout, through two doors with one meaning.

Each decision (approve, reject, promote, abort, pause, resume, skipAnalysis, setWeight) is
- an **update** for the CLI and scripts: its validator refuses a wrong one (wrong state, unknown or
  unauthorized approver, self-approval, duplicate vote, nothing waiting) before anything is written to
  history, and the caller gets the reason;
- a **signal** of the same name for the Web UI (small JSON payload): checked by the same rules; a refused
  signal is recorded as refused in the status's `decisions`, never acted on.
Every decision that reaches the workflow is in `status.decisions` (who, when, source, comment,
accepted or refused and why) and in the step history.

A workflow carries only the decisions it supports: it inherits the handler classes it wants
(workflows/handlers.py: `Abort`, `Promote`, `Approve`, `Hold`, `SkipAnalysis`, `SetWeight`; a staged
release `Halt` and `Rollback`); each handler is written out, and all of them call the one rule set
here, `DecisionRules`, that works on the workflow's `RolloutControl`.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.identity import IdentityActivities
    from models.approvals import (
        AbortRequest,
        ApproveRequest,
        Decision,
        DecisionRecord,
        HaltRequest,
        PauseRequest,
        PromoteRequest,
        RejectRequest,
        ResumeRequest,
        RollbackRequest,
        SetWeightRequest,
        SkipAnalysisRequest,
        Vote,
        names_match,
    )
    from models.identity import USED, VerifiedIdentity, VoteToVerify, claims_of, verify_token
    from models.status import ControlResult, Reason
    from workflows.context import Control
    from workflows.details import details

DESCRIPTIONS = {
    "approve": 'Approve the step waiting for approval. {"by": "you", "choice": "", "comment": ""}',
    "reject": 'Reject the step waiting for approval: roll back. {"by": "you", "comment": "why"}',
    "promote": 'Continue past the current pause ("full": true skips the remaining steps). {"by": "you"}',
    "abort": 'Send all traffic back to stable and stop. {"by": "you", "reason": "why"}',
    "pause": 'Hold the rollout at the next step boundary until resumed. {"by": "you", "comment": "why"}',
    "resume": 'Release a hold put on by pause. {"by": "you"}',
    "skipAnalysis": 'End the running analysis as successful. {"by": "you", "comment": "why"}',
    "setWeight": 'Canary: set the canary weight now, while paused. {"by": "you", "weight": 10}',
    "halt": 'Release: stop new installs now, until resumed. {"by": "you", "comment": "why"}',
    "rollback": 'Release: go back to the previous release now. {"by": "you", "reason": "why"}',
}

class Invalid(str):
    """A refusal because of what the decision says (who, choice, reason), not the rollout's state: the
    CLI exits 2 for these, 5 for the others."""


VOTES = ("approve", "reject")  # the decisions an approval's identity policy asks proof for
SIGNAL_VOTES_PROVEN = "signal-votes-proven-by-an-activity"  # workflow.patched: runs recorded before check inline
TOKENS_KEYED = "tokens-single-use-by-claims"  # workflow.patched: a signal's vote refused on its token's claims too
NAMES_FOLDED = "names-compared-case-insensitively"  # workflow.patched: runs recorded before compared exactly


def same_person(a: str, b: str, member: bool = False, emails: bool = True) -> bool:
    """`models.approvals.names_match` in a workflow: runs recorded before compared names exactly."""
    if a == b:
        return True
    if not names_match(a, b, member, emails):
        return False
    return workflow.unsafe.is_read_only() or workflow.patched(NAMES_FOLDED)  # a validator is never replayed

EVENTS = {"approve": "approved", "reject": "rejected", "promote": "promoted", "abort": "abort-requested",
          "pause": "held", "resume": "resumed", "skipAnalysis": "analysis-skipped", "setWeight": "weight-requested",
          "halt": "halted", "rollback": "rollback-requested"}


class DecisionRules:
    """The rules of every decision, the same for both doors, on one control's status and pending requests."""

    def __init__(self, control: Control, supported: frozenset[str]):
        self.control, self.supported = control, supported
        self.why_not: dict[str, str] = {}  # decisions a target cannot honour, and why (a store without pause)

    def validate(self, kind: str, request: Decision) -> None:
        """The update's validator: a refusal raises, and nothing is written to history."""
        problem = self.decision_problem(kind, request)
        if problem:
            raise ApplicationError(problem, type="InvalidDecision" if isinstance(problem, Invalid) else "Refused",
                                   non_retryable=True)

    def signal(self, kind: str, request: Decision, proven: VerifiedIdentity | str | None = None,
               legacy: bool = False) -> None:
        """The signal's handler: a refusal is kept in the audit trail, never acted on. `proven`: what the
        `verify_vote` activity answered for its token; `legacy`: a run recorded before it did."""
        problem = self.decision_problem(kind, request, proven, legacy)
        if problem:  # a refused token proves nobody: the record names no one it could not verify
            unproven = not request.by and request.id_token
            self.audit(kind, request.model_copy(update={"by": "(unverified)"}) if unproven else request, "web-ui",
                       why=problem)
        else:
            self.take(kind, request, "web-ui", proven, legacy)

    async def signal_vote(self, kind: str, request: Decision) -> None:
        """A vote by signal. Where the open approval asks for proof, its token is checked by the
        `verify_vote` local activity, whose answer the history keeps: a replay needs neither the key a
        sealed token was sealed to nor the cryptography (runs recorded before checked it inline)."""
        a, policy = self.control.status.approval, self.control.approval_policy
        if a is None or policy is None or policy.identity is None or not request.id_token.strip():
            return self.signal(kind, request)
        if not workflow.patched(SIGNAL_VOTES_PROVEN):
            return self.signal(kind, request, legacy=True)
        # Asked here, before the local activity is awaited, not when the answer is read after it: a patch
        # first asked after an awaited local activity can land in another activation on replay than it did
        # live (two votes whose activities finish together), which the SDK reports as nondeterminism. The
        # answer is memoized for the run, so the later calls add no marker.
        workflow.patched(TOKENS_KEYED)
        workflow.patched(NAMES_FOLDED)
        try:
            answer = await workflow.execute_local_activity_method(
                IdentityActivities.verify_vote, VoteToVerify(
                    token=request.id_token, policy=policy.identity, rollout_id=self.control.status.rollout_id,
                    keys=self.control.signing_keys, now=workflow.now(), used=sorted(self._used_tokens()),
                    opened_at=a.opened_at),
                start_to_close_timeout=timedelta(seconds=10), retry_policy=RetryPolicy(maximum_attempts=3),
                summary=f"verify the ID token of a {kind} signal")
        except FailureError as error:  # a signal never fails the rollout: the vote is refused, and says why
            failure = error.cause if isinstance(error, ActivityError) and isinstance(error.cause, FailureError) else error
            return self.signal(kind, request, f"the ID token could not be checked ({failure.message})")
        self.signal(kind, request, answer.identity or answer.problem)

    def _used_tokens(self, keys: bool = True) -> set[str]:
        """The hashes and single-use keys of the tokens accepted votes used: each counts once per rollout
        (the records are kept until their tokens expire, across continued runs: workflows/continuation.py)."""
        accepted = [d for d in self.control.status.decisions if d.accepted]
        starter = {self.control.status.initiator_token_key} if keys and self.control.status.initiator_token_key else set()
        return {d.token_sha256 for d in accepted if d.token_sha256} | (
            {d.token_key for d in accepted if d.token_key} if keys else set()) | starter

    def decision_problem(self, kind: str, request: Decision, proven: VerifiedIdentity | str | None = None,
                         legacy: bool = False) -> str:
        s = self.control.status
        if s.phase.finished:
            return f"rollout is already {s.phase.value}"
        if not request.by.strip() and not (request.id_token.strip() and kind in VOTES):
            return Invalid(f"{kind}: say who decides (by)")
        if kind not in self.supported:
            return Invalid(f"{kind}: {self.why_not[kind]}" if kind in self.why_not
                           else f"{kind} is not something a {s.strategy} rollout does")
        if self.control.pending.abort is not None:
            return "rollout is being aborted"
        at = (s.approval.step if s.approval is not None else s.current_step) + 1
        if request.step is not None and request.step != at:
            return f"{kind} was meant for step {request.step}, but the rollout is at step {at}"
        request, proof, problem = self.prove(kind, request, proven=proven, legacy=legacy)
        return problem or getattr(self, f"_problem_{kind}")(request, proof)

    def prove(self, kind: str, request: Decision, verify: bool = True, proven: VerifiedIdentity | str | None = None,
              legacy: bool = False) -> tuple[Decision, VerifiedIdentity | None, str]:
        """The request without its ID token and, when the open approval requires proof of identity, under
        the name the token proves (models/identity.py) — or why the token proves none. `verify=False`: an
        accepted update, whose validator verified the token: its claims are read, not checked again, so
        its replay depends on neither the clock, the fetched keys nor the sealing key. `proven`: what the
        `verify_vote` activity answered (a signal's vote); `legacy`: a signal's vote verified inline, in a
        run recorded before the activity did it."""
        a, policy = self.control.status.approval, self.control.approval_policy
        bare = request.model_copy(update={"id_token": ""})
        if kind not in VOTES or a is None or policy is None or policy.identity is None:
            return bare, None, ""
        identity = policy.identity
        if not request.id_token.strip():
            return bare, None, Invalid(f"step {a.step + 1} counts only votes proven by an ID token from "
                                       f"{identity.issuer} (rollout {kind} --id-token-file; the Web UI: \"idToken\")")
        used = self._used_tokens()
        if proven is not None:  # checked by the activity; another vote may have used the token since
            reused = isinstance(proven, VerifiedIdentity) and (proven.token_sha256 in used or (
                proven.token_key in used and workflow.patched(TOKENS_KEYED)))
            proof = USED if reused else proven
        else:
            # An update's validator (never replayed), or (`legacy`) a signal's vote in a run recorded before
            # the activity checked them, replayed with the checks and the used set it was recorded with.
            # cryptography's Rust core imports Python modules while it verifies: the real ones, not the sandbox's.
            with workflow.unsafe.imports_passed_through():
                proof = (verify_token(request.id_token, identity, self.control.status.rollout_id,
                                      self.control.signing_keys, workflow.now(),
                                      self._used_tokens(keys=False) if legacy else used, legacy=legacy,
                                      opened_at=a.opened_at)
                         if verify else claims_of(request.id_token, identity))
        if isinstance(proof, str):
            return bare, None, Invalid(f"{kind}: {proof}")
        return bare.model_copy(update={"by": proof.name}), proof, ""

    def _problem_approve(self, request: ApproveRequest, proof: VerifiedIdentity | None) -> str:
        return self._vote_problem(request.by, request.choice, proof=proof)

    def _problem_reject(self, request: RejectRequest, proof: VerifiedIdentity | None) -> str:
        return self._vote_problem(request.by, "reject", rejecting=True, proof=proof)

    def _vote_problem(self, who: str, choice: str, rejecting: bool = False, proof: VerifiedIdentity | None = None) -> str:
        """Whether `who` may vote `choice` now; the initiator may always reject their own rollout. With a
        `proof`, a group:NAME approver also matches the groups the ID token lists."""
        a, policy = self.control.status.approval, self.control.approval_policy
        if a is not None and policy is None and not a.decided and self.control.status.runs > 1:
            return f"the approval of step {a.step + 1} is being re-opened in the rollout's new run: try again in a moment"
        if a is None or policy is None or a.decided:
            return f"step {self.control.status.current_step + 1} is not waiting for approval"
        in_group = proof is not None and bool(set(proof.groups) & set(policy.groups))
        emails = policy.identity is None or policy.identity.claim == "email"
        if (a.eligible is not None and not in_group
                and not any(same_person(who, e, member=True, emails=emails) for e in a.eligible)):
            return Invalid(f"{who} is not an approver of step {a.step + 1} (approvers: {', '.join(a.approvers)})")
        if a.forbid_self_approval and same_person(who, a.initiator) and not rejecting:
            return Invalid(f"{who} started this rollout and cannot approve it (forbidSelfApproval)")
        earlier = next((v for v in a.votes if same_person(v.by, who)), None)
        if earlier is not None:
            return Invalid(f"{who} has already voted ({earlier.choice} at {earlier.at:%H:%M:%S})")
        if policy.choice(choice) is None:
            return Invalid("this approval has no choice that rolls back" if rejecting
                           else f"unknown choice {choice!r} (choices: {', '.join(a.choices)})")
        return ""

    def _problem_promote(self, request: PromoteRequest, proof: None) -> str:
        s, a = self.control.status, self.control.status.approval
        if a is not None and not a.decided:
            if (a.eligible is not None or a.min_approvals > 1 or a.forbid_self_approval or len(a.choices) > 2
                    or a.identity is not None):
                return (f"step {a.step + 1} waits for approval under a policy: "
                        f"`rollout approve {s.rollout_id}` (signal approve)")
            return self._vote_problem(request.by, "")
        if request.full:
            if "full" not in self.supported:
                return Invalid(f"promote --full is not something a {s.strategy} rollout does")
            gate = self.control.next_approval_step()
            if gate is not None:
                return f"promote --full would skip the approval at step {gate + 1}"
            return ""
        if not self.control.pending.in_pause:
            return f"rollout is not paused (phase {s.phase.value}, step {s.current_step + 1})"
        return ""

    def _problem_abort(self, request: AbortRequest, proof: None) -> str:
        if not (request.reason.strip() or request.comment.strip()):
            return Invalid("abort: say why (reason)")
        return self.control.pending.abort_closed

    def _problem_pause(self, request: PauseRequest, proof: None) -> str:
        return f"rollout is already held by {self.control.pending.held.by}" if self.control.pending.held is not None else ""

    def _problem_halt(self, request: HaltRequest, proof: None) -> str:
        return f"release is already halted by {self.control.pending.held.by}" if self.control.pending.held is not None else ""

    def _problem_resume(self, request: ResumeRequest, proof: None) -> str:
        if self.control.pending.held is None:
            if "halt" in self.supported:
                return "release is not halted"
            return "rollout is not held by `rollout pause` (a pause step ends with promote)"
        return ""

    def _problem_rollback(self, request: RollbackRequest, proof: None) -> str:
        if not (request.reason.strip() or request.comment.strip()):
            return Invalid("rollback: say why (reason)")
        return self.control.pending.abort_closed

    def _problem_skipAnalysis(self, request: SkipAnalysisRequest, proof: None) -> str:
        if not self.control.pending.analysis_running:
            return "no analysis is running"
        return "a skip is already requested" if self.control.pending.skip is not None else ""

    def _problem_setWeight(self, request: SetWeightRequest, proof: None) -> str:
        held_here = self.control.status.reason == Reason.PAUSED_BY_USER.value  # held at a step boundary, not just asked to
        if not (self.control.pending.in_pause or held_here or self.control.status.approval is not None):
            return "setWeight applies while the rollout is paused (`rollout pause` first)"
        return "a weight change is already being applied" if self.control.pending.weight is not None else ""

    # ---- accepting ----------------------------------------------------------------------------------

    def take(self, kind: str, request: Decision, source: str, proven: VerifiedIdentity | str | None = None,
             legacy: bool = False) -> ControlResult:
        # An update's validator verified the token before it was accepted; a signal's was checked by the
        # verify_vote activity (`proven`), or here in runs recorded before it.
        request, proof, problem = self.prove(kind, request, verify=source != "cli", proven=proven, legacy=legacy)
        if problem:  # a signal's problem was found by decision_problem first: not reached
            raise ApplicationError(problem, type="InvalidDecision", non_retryable=True)
        message = getattr(self, f"_take_{kind}")(request, proof)
        self.audit(kind, request, source, detail=message, proof=proof)
        s = self.control.status
        return ControlResult(accepted=True, phase=s.phase, current_step=s.current_step, message=message)

    def _vote(self, request: Decision, choice_name: str, proof: VerifiedIdentity | None) -> str:
        a, policy = self.control.status.approval, self.control.approval_policy
        assert a is not None and policy is not None
        choice = policy.choice(choice_name)
        a.votes.append(Vote(by=request.by, choice=choice.name, at=workflow.now(), comment=request.comment,
                            verified=proof is not None))
        if choice.action == "abort" or a.tally(choice.name) >= a.min_approvals:
            a.decided = choice.name
            return f"{choice.name}: decided by {', '.join(v.by for v in a.votes if v.choice == choice.name)}"
        return f"{choice.name}: {a.tally(choice.name)} of {a.min_approvals} approvals"

    def _take_approve(self, request: ApproveRequest, proof: VerifiedIdentity | None) -> str:
        return self._vote(request, request.choice, proof)

    def _take_reject(self, request: RejectRequest, proof: VerifiedIdentity | None) -> str:
        return self._vote(request, "reject", proof)

    def _take_promote(self, request: PromoteRequest, proof: None) -> str:
        if self.control.status.approval is not None and not self.control.status.approval.decided:
            return self._vote(request, "", None)
        self.control.pending.promote = request
        if request.full:
            self.control.pending.promote_full = True
            return "promoting now: the remaining steps are skipped"
        return f"promoted at step {self.control.status.current_step + 1}"

    def _take_abort(self, request: AbortRequest, proof: None) -> str:
        reason = request.reason.strip() or request.comment.strip()
        self.control.pending.abort = request.model_copy(update={"reason": reason})
        return f"abort accepted: {reason}"

    def _take_pause(self, request: PauseRequest, proof: None) -> str:
        self.control.pending.held = request
        self.control.status.held_by = request.by
        return "held: the rollout stops at the next step boundary until resumed"

    def _take_halt(self, request: HaltRequest, proof: None) -> str:
        self.control.pending.held = request
        self.control.status.held_by = request.by
        return "halted: no new installs until resumed"

    def _take_rollback(self, request: RollbackRequest, proof: None) -> str:
        reason = request.reason.strip() or request.comment.strip()
        self.control.pending.rollback = True
        self.control.pending.abort = AbortRequest(by=request.by, reason=reason, comment=request.comment)
        return f"rolling back: {reason}"

    def _take_resume(self, request: ResumeRequest, proof: None) -> str:
        self.control.pending.held = None
        self.control.status.held_by = ""
        return "resumed"

    def _take_skipAnalysis(self, request: SkipAnalysisRequest, proof: None) -> str:
        self.control.pending.skip = request
        return "the running analysis ends as successful (skipped)"

    def _take_setWeight(self, request: SetWeightRequest, proof: None) -> str:
        self.control.pending.weight = request
        return f"setting the canary weight to {request.weight}%"

    def audit(self, kind: str, request: Decision, source: str, detail: str = "", why: str = "",
              proof: VerifiedIdentity | None = None) -> None:
        s = self.control.status
        policy = self.control.approval_policy
        chosen = policy.choice(getattr(request, "choice", "")) if policy else None
        extra = {"approve": chosen.name if chosen else getattr(request, "choice", ""), "setWeight": f"{getattr(request, 'weight', '')}%",
                 "abort": getattr(request, "reason", ""), "rollback": getattr(request, "reason", ""), "promote": "full" if getattr(request, "full", False) else ""}
        s.decisions.append(DecisionRecord(
            at=workflow.now(), kind=kind, by=request.by, source=source, step=s.current_step, comment=request.comment,
            detail=extra.get(kind, "") or detail, accepted=not why, why=why,
            verified=proof is not None, token_sha256=proof.token_sha256 if proof else "",
            token_key=proof.token_key if proof else "", token_expires=proof.expires_at if proof else None,
        ))
        event = EVENTS[kind] if not why else f"{kind}-refused"
        self.control.record(event, f"{detail or why}{' — ' + request.comment if request.comment else ''}", by=request.by)
        workflow.set_current_details(details(s))
