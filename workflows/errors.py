"""What ends a strategy's steps early, each carrying the reason the rollout reports."""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.status import Reason


class RolloutAborted(Exception):
    """Raised inside a strategy when a person (or a failure) aborted the rollout."""

    reason = Reason.ABORTED


class ApprovalRejected(RolloutAborted):
    reason = Reason.APPROVAL_REJECTED


class ApprovalTimedOut(RolloutAborted):
    reason = Reason.APPROVAL_TIMED_OUT


class AnalysisFailed(RolloutAborted):
    """The analysis decided the new version is bad: roll back."""


class WebhookFailed(RolloutAborted):
    """A check hook said no: roll back."""


class StageFailed(RolloutAborted):
    """A pipeline stage failed (a target, a check, a broken soak); `reason` says which."""

    def __init__(self, message: str, reason: Reason = Reason.FAILED):
        super().__init__(message)
        self.reason = reason
