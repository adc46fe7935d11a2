"""The decision handlers a workflow inherits: each decision written out as an update with its
validator (the CLI's door) and a signal of the same name (the Web UI's door), all calling the one rule
set, `DecisionRules` (workflows/decisions.py). A workflow inherits the classes of the decisions it
takes; `supported_by` says which those are, and the rules refuse the rest."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.approvals import (
        AbortRequest,
        ApproveRequest,
        HaltRequest,
        PauseRequest,
        PromoteRequest,
        RejectRequest,
        ResumeRequest,
        RollbackRequest,
        SetWeightRequest,
        SkipAnalysisRequest,
    )
    from models.status import ControlResult
    from workflows.decisions import DESCRIPTIONS, DecisionRules


class Abort:
    """`abort`: send all traffic back to the stable version and stop."""

    rules: DecisionRules

    @workflow.update(name="abort", description=DESCRIPTIONS["abort"])
    async def abort(self, request: AbortRequest) -> ControlResult:
        return self.rules.take("abort", request, "cli")

    @abort.validator
    def _validate_abort(self, request: AbortRequest) -> None:
        self.rules.validate("abort", request)

    @workflow.signal(name="abort", description=DESCRIPTIONS["abort"])
    def abort_signal(self, request: AbortRequest) -> None:
        self.rules.signal("abort", request)


class Promote:
    """`promote`: end the current pause (`full`: skip the remaining steps); an approval without a policy
    takes it as the vote that goes on."""

    rules: DecisionRules

    @workflow.update(name="promote", description=DESCRIPTIONS["promote"])
    async def promote(self, request: PromoteRequest) -> ControlResult:
        return self.rules.take("promote", request, "cli")

    @promote.validator
    def _validate_promote(self, request: PromoteRequest) -> None:
        self.rules.validate("promote", request)

    @workflow.signal(name="promote", description=DESCRIPTIONS["promote"])
    def promote_signal(self, request: PromoteRequest) -> None:
        self.rules.signal("promote", request)


class Approve:
    """`approve` and `reject`: votes on the step waiting for approval, under its policy."""

    rules: DecisionRules

    @workflow.update(name="approve", description=DESCRIPTIONS["approve"])
    async def approve(self, request: ApproveRequest) -> ControlResult:
        return self.rules.take("approve", request, "cli")

    @approve.validator
    def _validate_approve(self, request: ApproveRequest) -> None:
        self.rules.validate("approve", request)

    @workflow.signal(name="approve", description=DESCRIPTIONS["approve"])
    async def approve_signal(self, request: ApproveRequest) -> None:
        await self.rules.signal_vote("approve", request)

    @workflow.update(name="reject", description=DESCRIPTIONS["reject"])
    async def reject(self, request: RejectRequest) -> ControlResult:
        return self.rules.take("reject", request, "cli")

    @reject.validator
    def _validate_reject(self, request: RejectRequest) -> None:
        self.rules.validate("reject", request)

    @workflow.signal(name="reject", description=DESCRIPTIONS["reject"])
    async def reject_signal(self, request: RejectRequest) -> None:
        await self.rules.signal_vote("reject", request)


class Hold:
    """`pause` and `resume`: hold the rollout at the next step boundary, and let it go on."""

    rules: DecisionRules

    @workflow.update(name="pause", description=DESCRIPTIONS["pause"])
    async def pause(self, request: PauseRequest) -> ControlResult:
        return self.rules.take("pause", request, "cli")

    @pause.validator
    def _validate_pause(self, request: PauseRequest) -> None:
        self.rules.validate("pause", request)

    @workflow.signal(name="pause", description=DESCRIPTIONS["pause"])
    def pause_signal(self, request: PauseRequest) -> None:
        self.rules.signal("pause", request)

    @workflow.update(name="resume", description=DESCRIPTIONS["resume"])
    async def resume(self, request: ResumeRequest) -> ControlResult:
        return self.rules.take("resume", request, "cli")

    @resume.validator
    def _validate_resume(self, request: ResumeRequest) -> None:
        self.rules.validate("resume", request)

    @workflow.signal(name="resume", description=DESCRIPTIONS["resume"])
    def resume_signal(self, request: ResumeRequest) -> None:
        self.rules.signal("resume", request)


class Halt:
    """`halt` and `resume` (a staged release): stop new installs at once, and let the release go on with
    the same cohort."""

    rules: DecisionRules

    @workflow.update(name="halt", description=DESCRIPTIONS["halt"])
    async def halt(self, request: HaltRequest) -> ControlResult:
        return self.rules.take("halt", request, "cli")

    @halt.validator
    def _validate_halt(self, request: HaltRequest) -> None:
        self.rules.validate("halt", request)

    @workflow.signal(name="halt", description=DESCRIPTIONS["halt"])
    def halt_signal(self, request: HaltRequest) -> None:
        self.rules.signal("halt", request)

    @workflow.update(name="resume", description=DESCRIPTIONS["resume"])
    async def resume(self, request: ResumeRequest) -> ControlResult:
        return self.rules.take("resume", request, "cli")

    @resume.validator
    def _validate_resume(self, request: ResumeRequest) -> None:
        self.rules.validate("resume", request)

    @workflow.signal(name="resume", description=DESCRIPTIONS["resume"])
    def resume_signal(self, request: ResumeRequest) -> None:
        self.rules.signal("resume", request)


class Rollback:
    """`rollback` (a staged release): go back to the previous release now."""

    rules: DecisionRules

    @workflow.update(name="rollback", description=DESCRIPTIONS["rollback"])
    async def rollback(self, request: RollbackRequest) -> ControlResult:
        return self.rules.take("rollback", request, "cli")

    @rollback.validator
    def _validate_rollback(self, request: RollbackRequest) -> None:
        self.rules.validate("rollback", request)

    @workflow.signal(name="rollback", description=DESCRIPTIONS["rollback"])
    def rollback_signal(self, request: RollbackRequest) -> None:
        self.rules.signal("rollback", request)


class SkipAnalysis:
    """`skipAnalysis`: end the running analysis as successful (recorded as skipped)."""

    rules: DecisionRules

    @workflow.update(name="skipAnalysis", description=DESCRIPTIONS["skipAnalysis"])
    async def skip_analysis(self, request: SkipAnalysisRequest) -> ControlResult:
        return self.rules.take("skipAnalysis", request, "cli")

    @skip_analysis.validator
    def _validate_skip_analysis(self, request: SkipAnalysisRequest) -> None:
        self.rules.validate("skipAnalysis", request)

    @workflow.signal(name="skipAnalysis", description=DESCRIPTIONS["skipAnalysis"])
    def skip_analysis_signal(self, request: SkipAnalysisRequest) -> None:
        self.rules.signal("skipAnalysis", request)


class SetWeight:
    """`setWeight`: a canary's weight now, while paused or held."""

    rules: DecisionRules

    @workflow.update(name="setWeight", description=DESCRIPTIONS["setWeight"])
    async def set_weight(self, request: SetWeightRequest) -> ControlResult:
        return self.rules.take("setWeight", request, "cli")

    @set_weight.validator
    def _validate_set_weight(self, request: SetWeightRequest) -> None:
        self.rules.validate("setWeight", request)

    @workflow.signal(name="setWeight", description=DESCRIPTIONS["setWeight"])
    def set_weight_signal(self, request: SetWeightRequest) -> None:
        self.rules.signal("setWeight", request)


# The decisions a rollout that changes a target takes (a canary adds SetWeight and `promote --full`).
ROLLOUT_DECISIONS = frozenset({"approve", "reject", "promote", "abort", "pause", "resume", "skipAnalysis"})


def supported_by(workflow_class: type) -> frozenset[str]:
    """The decisions a workflow class carries handlers for (its rules refuse the rest)."""
    kinds = {Abort: {"abort"}, Promote: {"promote"}, Approve: {"approve", "reject"}, Hold: {"pause", "resume"},
             SkipAnalysis: {"skipAnalysis"}, SetWeight: {"setWeight"}, Halt: {"halt", "resume"},
             Rollback: {"rollback"}}
    return frozenset(k for mixin, names in kinds.items() if issubclass(workflow_class, mixin) for k in names)
