"""The small, explicit context the control-plane helpers work against — approvals, analysis, webhooks,
notifications, decisions — instead of another class's private attributes. `RolloutControl`
(workflows/control.py) is the one implementation; a workflow owns one and hands it to the helpers.

Nothing here knows what the rollout's target is: the control plane is the same for a Deployment, an
updater channel or a store track.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.approvals import ApprovalPolicy, PauseRequest, SetWeightRequest, SkipAnalysisRequest
    from models.identity import SigningKeys
    from models.plan import Plan
    from models.status import AbortRequest, Phase, PromoteRequest, Reason, Resume, RolloutStatus


@dataclass
class Pending:
    """What people asked for and the workflow has not yet acted on (set by the decision handlers, taken
    by the waits)."""

    abort: AbortRequest | None = None
    promote: PromoteRequest | None = None
    held: PauseRequest | None = None
    skip: SkipAnalysisRequest | None = None
    weight: SetWeightRequest | None = None
    in_pause: bool = False  # a pause step is open (promote ends it)
    promote_full: bool = False  # `promote --full`: skip the remaining steps
    analysis_running: int = 0  # analyses running now (skipAnalysis needs one)
    abort_closed: str = ""  # set when an abort can no longer be honoured, saying why
    rollback: bool = False  # a release's abort came as `rollback`: go back to the previous release

    def take_skip(self) -> SkipAnalysisRequest | None:
        skip, self.skip = self.skip, None
        return skip


class Announcer(Protocol):
    def send(self, event: str, severity: str, text: str) -> None: ...


class Control(Protocol):
    rollout: Plan  # a Rollout or a Release
    status: RolloutStatus
    initiator: str  # whom forbidSelfApproval refuses (models/starter.py)
    pending: Pending
    notifier: Announcer | None
    groups: dict[str, list[str]]
    approval_policy: ApprovalPolicy | None
    signing_keys: SigningKeys | None  # the open approval's identity issuer's keys
    on_set_weight: Callable[[int], Awaitable[None]] | None
    template_hash: Callable[[str], Awaitable[str]] | None  # role (Latest, Stable) -> its pods' template hash

    @property
    def abort_requested(self) -> AbortRequest | None: ...

    def record(self, event: str, detail: str = "", by: str = "", step: int | None = None) -> None: ...

    def change_phase(self, phase: Phase, reason: str = "", message: str = "") -> None: ...

    def announce(self, event: str, severity: str, text: str) -> None: ...

    def start_step(self, index: int, description: str) -> None: ...

    def request_abort(self, reason: str, by: str) -> None: ...

    def next_approval_step(self) -> int | None: ...

    def take_resumed(self, index: int) -> Resume | None: ...

    async def pause(self, index: int, duration: timedelta | None, what: str = "", reason: Reason | None = None) -> None: ...

    async def wait_deciding(self, done: Callable[[], bool], timeout: timedelta | None = None, summary: str = "") -> bool: ...

    async def sleep_unless_aborted(self, delay: timedelta, summary: str) -> None: ...

    async def run_interruptible(self, handle: workflow.ActivityHandle) -> Any: ...
