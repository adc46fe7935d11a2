"""What a rollout reports (one status model for every strategy) and the messages people send it."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, Literal

from pydantic import Field, computed_field

from models.analysis import AnalysisStep, MetricResult
from models.approvals import AbortRequest, DecisionRecord, PauseRequest, PendingApproval, PromoteRequest  # noqa: F401
from models.pipeline import PipelineTree
from models.routing import RouteState, SetCanaryScale
from models.spec import Rollout
from models.specbase import Message
from models.starter import StartedBy


class Phase(str, Enum):
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    HEALTHY = "Healthy"
    DEGRADED = "Degraded"

    @property
    def finished(self) -> bool:
        return self in (Phase.HEALTHY, Phase.DEGRADED)


class Reason(str, Enum):
    """Why a rollout is Degraded (or, for Paused, what it waits for)."""

    ABORTED = "RolloutAborted"
    PROGRESS_DEADLINE = "ProgressDeadlineExceeded"
    TARGET_INVALID = "InvalidTarget"
    FAILED = "RolloutFailed"
    WAITING_FOR_PROMOTE = "WaitingForPromote"
    WAITING_FOR_APPROVAL = "WaitingForApproval"
    ANALYSIS_FAILED = "AnalysisFailed"
    ANALYSIS_INCONCLUSIVE = "AnalysisInconclusive"
    WAITING_FOR_WEBHOOK = "WaitingForWebhook"
    WEBHOOK_FAILED = "WebhookFailed"
    TIMED_PAUSE = "TimedPause"
    PAUSED_BY_USER = "PausedByUser"
    OUTSIDE_WINDOW = "OutsideExecutionWindow"
    SOAKING = "Soaking"
    APPROVAL_REJECTED = "ApprovalRejected"
    APPROVAL_TIMED_OUT = "ApprovalTimedOut"
    INVALID_POLICY = "InvalidApprovalPolicy"
    INVALID_START = "InvalidStart"  # the starter not proven where an approval asks, or a first run handed a resume
    ABORT_FAILED = "AbortFailed"  # Degraded: the abort itself failed (the message says where it stopped)
    UNDO_FAILED = "UndoFailed"
    ROLLED_BACK = "RolledBack"  # a rollback window switched back (Healthy); a release rolled back by decision (Degraded)
    WINDOW_CLOSE_FAILED = "WindowCloseFailed"
    BAKING = "Baking"  # Paused: a release's phase bakes before its gate
    HALTED = "Halted"  # Paused: a release is halted (no new installs) until resumed
    IN_REVIEW = "InReview"  # Paused: a store reviews the release before it can be exposed
    STORE_REJECTED = "StoreRejected"  # a store or MDM refused a request (its own message follows)
    STORE_UNAUTHORIZED = "StoreUnauthorized"  # the store refused the credentials, a fresh token too
    TARGET_FAILED = "TargetFailed"  # a pipeline: a target's rollout failed (the message names it)
    NO_PODS = "NoPods"  # a pipeline's target ran its rollout, but no pod of the new revision runs (0 replicas)
    STALE_REVISION = "StaleRevision"  # a pipeline's target was healthy, but not on the bundle's revision
    ADOPTION_BELOW_MINIMUM = "AdoptionBelowMinimum"  # a release offered to all, measured below spec.adoption.minimum
    CHECK_FAILED = "CheckFailed"  # a pipeline's pre-deployment check, or its soak, did not hold


class Exposure(Message):
    """How much of the audience the new version has, desired and observed, in the target's unit: a
    percentage of traffic (a canary, a blue-green's active side), replicas, a fraction of users (a store's
    staged rollout), devices (an updater channel)."""

    desired: float = 0.0
    observed: float = 0.0
    unit: Literal["percent", "replicas", "userFraction", "devices"] = "percent"
    source: str = Field("", description="where `observed` comes from: the target's own report, or a measurement")


class Versions(Message):
    stable: str = Field("", description="what the target ran before (and runs again after a rollback)")
    candidate: str = Field("", description="what the rollout brings")


class HistoryEntry(Message):
    at: datetime
    event: str = Field(description="what happened: step-started, weight-set, paused, promoted, aborted, ...")
    step: int | None = None
    detail: str = ""
    by: str = ""


class TargetStatus(Message):
    """The delivery target in a target's own terms (the generic fields above stay what every target shares;
    the Kubernetes-named ones — replicas, actualWeight — stay where scripts read them)."""

    kind: str = Field(description="the target's key in spec.target: kubernetes, ecs")
    family: str = Field(description="the task-queue family whose workers deliver to it")
    instances: str = Field(description="what its instances are called: pods, tasks")
    fields: dict[str, Any] = Field(default_factory=dict, description="the target's block as the spec gives it")


class RolloutStatus(Message):
    rollout_id: str
    name: str
    environment: str
    strategy: str
    target: str
    image: str
    stable_image: str = ""
    phase: Phase = Phase.PROGRESSING
    exposure: Exposure = Field(default_factory=Exposure, description="the new version's share, for every target")
    reason: str = ""
    message: str = ""
    current_step: int = Field(0, description="index of the step being run; equals totalSteps when done")
    total_steps: int = 0
    canary_weight: int = Field(0, description="weight the canary was last given, in percent")
    actual_weight: float = Field(0.0, description="share of ready canary pods behind the stable Service")
    stable_replicas: int = 0
    canary_replicas: int = 0
    routes: list[str] = Field(default_factory=list, description="header and mirror routes to the canary in effect")
    delivery: TargetStatus | None = Field(None, description="the delivery target's own block (None: releases, "
                                                            "and runs from before it)")
    analysis: list[MetricResult] = Field(default_factory=list, description="the last analysis: each metric, its "
                                                                           "counts and latest measurements")
    paused_until: datetime | None = None
    steps: list[str] = Field(default_factory=list, description="what each step does, in order")
    started_by: str = Field("", description="who started the rollout (CLI user or CI actor)")
    initiator: str = Field("", description="whom forbidSelfApproval refuses: started_by, or for a pipeline's or a "
                                           "train's child the person who started or submitted it (as they said); "
                                           "the name an ID token proved when initiatorProven")
    initiator_proven: bool = Field(False, description="the initiator is the name the starter's ID token proved "
                                                      "(an approval forbids self-approval under identity)")
    initiator_token_key: str = Field("", description="the single-use key (a hash) of the ID token that proved the "
                                                     "initiator: it cannot be sent again as a vote")
    spec_digest: str = Field("", description="identifies the spec it runs (a retried start of the same spec attaches)")
    approval: PendingApproval | None = Field(None, description="the approval being waited for, with its votes")
    held_by: str = Field("", description="who paused the rollout with `rollout pause` (until resumed)")
    decisions: list[DecisionRecord] = Field(default_factory=list, description="every decision sent, and its fate")
    started_at: datetime | None = None
    finished_at: datetime | None = None
    runs: int = Field(1, description="workflow runs so far (a long wait continues as new)")
    history: list[HistoryEntry] = Field(default_factory=list)
    pipeline: PipelineTree | None = Field(None, description="a pipeline: stage → wave → target, each target's "
                                                             "rollout and the revision it was verified on")

    # What every target has is above the line `canaryWeight`: phase, step, versions, exposure. The fields
    # from `canaryWeight` to `routes` are the Kubernetes target's detail (kept where scripts read them).

    @computed_field
    @property
    def versions(self) -> Versions:
        return Versions(stable=self.stable_image, candidate=self.image)

    def expose(self, desired: float, observed: float) -> None:
        """The new version's share of traffic now (percent), in the common and the Kubernetes fields."""
        self.exposure = Exposure(desired=desired, observed=observed, unit="percent")
        self.canary_weight, self.actual_weight = int(desired), float(observed)


class Resume(Message):
    """Where a rollout that continued as new (its history grew long during a long wait) picks up: the
    status so far and the strategy's state at the wait. Never anything a person typed but decisions."""

    status: RolloutStatus
    step: int = Field(description="the step whose wait is re-entered")
    container: str = ""
    total_replicas: int = 0
    routes: RouteState = Field(default_factory=RouteState)
    canary_scale: SetCanaryScale | None = None
    paused_until: datetime | None = Field(None, description="a timed pause's end (the timer goes on from there)")
    approval: PendingApproval | None = Field(None, description="the open approval, votes included")
    held: PauseRequest | None = None
    groups: dict[str, list[str]] = Field(default_factory=dict)


class RunInput(StartedBy):
    """What every rollout workflow starts with: the spec and who asked (models/starter.py). Each workflow's
    input adds its own fields (older inputs were one model with all of them: their JSON reads as any of these)."""

    rollout: Rollout
    action: Literal["rollout", "undo", "restart", "window", "analyze"] = "rollout"

    @property
    def document(self) -> Rollout:
        """What the control plane runs (a Release's input names its Release)."""
        return self.rollout


class RolloutInput(RunInput):
    """A strategy's run (canary, blue-green, A/B test, rolling update, recreate)."""

    action: Literal["rollout"] = "rollout"
    resume: Resume | None = Field(None, description="set by the workflow itself when it continues as new")
    continue_after_events: int = Field(10_000, ge=50, description="continue as new at a long wait once the history "
                                                                  "has this many events (or the server suggests it)")


class RevisionInput(RunInput):
    """`rollout undo` / `rollout restart`: the rollout's target through RevisionRollout."""

    action: Literal["undo", "restart"]
    to_revision: int = Field(0, ge=0, description="undo: the revision to go back to (0: the one before)")


class WindowRunInput(RunInput):
    """The rollback window a Healthy rollout opens (`<rollout ID>/window`)."""

    action: Literal["window"] = "window"


class AnalyzeInput(RunInput):
    """`rollout analyze`: the templates and args to run once."""

    action: Literal["analyze"] = "analyze"
    analyze: AnalysisStep


class UndoRequest(Message):
    """Switch back to a warm earlier revision (`to_revision` 0: the newest one kept warm)."""

    to_revision: int = 0
    by: str = ""


class ControlResult(Message):
    accepted: bool
    phase: Phase
    current_step: int
    message: str = ""


def target_status(document: Any) -> TargetStatus | None:
    """A document's delivery target as `RolloutStatus.delivery` shows it (None: a document without one)."""
    target = getattr(getattr(document, "spec", None), "target", None)
    chosen = getattr(target, "chosen", None)
    if chosen is None or not hasattr(chosen, "FAMILY"):
        return None
    return TargetStatus(kind=target.kind, family=chosen.FAMILY, instances=chosen.INSTANCES,
                        fields=chosen.model_dump(by_alias=True, exclude_none=True, mode="json"))
