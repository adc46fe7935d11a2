"""A release train: one long-lived workflow per channel that runs the releases submitted to it, one
after another (each a StagedRelease child with its own history), for years — nightly builds, say —
continuing as new before its own history grows long."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from models.release import Release
from models.specbase import Message
from models.status import Phase

KEPT_RESULTS = 50
RELEASE_EVENTS = 20  # the most events one release adds to the train: its child's initiated, started and completed
#                      events and the workflow tasks around them
SUBMISSION_EVENTS = 8  # the most one accepted submission adds: the update's accepted and completed events, its
#                        workflow task (3), and where a token is checked a local activity's marker and a task more


def headroom(max_queued: int) -> int:
    """Events the train may add between two looks at its history's length (one release and the submissions
    accepted while it runs, at most `max_queued`)."""
    return RELEASE_EVENTS + SUBMISSION_EVENTS * max_queued


def room(continue_after_events: int, max_queued: int) -> int:
    """How far before `continueAfterEvents` the train continues as new: the headroom, but never more than
    half the limit (a limit below twice the headroom would have every run continue at once). Not a check
    of the input: inputs recorded before maxQueued existed must still decode."""
    return min(headroom(max_queued), continue_after_events // 2)


def train_id(environment: str, name: str) -> str:
    return f"train/{environment}/{name}"


class TrainedRelease(Message):
    """One release the train ran: its workflow, version and how it ended."""

    workflow_id: str
    version: str
    phase: Phase
    reason: str = ""
    finished_at: datetime | None = None


class TrainInput(Message):
    name: str
    environment: str
    queued: list[Release] = Field(default_factory=list, description="submitted, not yet run (carried across runs)")
    queued_by: list[str] = Field(default_factory=list, description="who submitted each queued release (runs recorded "
                                                                   "before it: empty)")
    queued_proven: list[bool] = Field(default_factory=list, description="whether an ID token proved each submitter "
                                                                        "(honoured only in a continued run)")
    released: int = Field(0, description="releases run so far, over every run of the train")
    results: list[TrainedRelease] = Field(default_factory=list, description="the newest results")
    runs: int = 1
    continue_after_events: int = Field(10_000, ge=100, le=50_000)
    max_queued: int = Field(25, ge=1, le=200, description="releases that may wait: a submission beyond is refused "
                                                          "(the update; the signal does not queue it), so the "
                                                          "history one release's wait adds is bounded")


class SubmitRelease(Message):
    release: Release
    by: str = ""
    starter_token: str = Field("", description="the submitter's ID token, sealed for a start (models/starter.py): "
                                               "needed when the release's approvals forbid self-approval under "
                                               "identity; the name it proves is the submitter")


class SubmitResult(Message):
    accepted: bool
    position: int = Field(description="how many releases run before this one")
    workflow_id: str = Field("", description="the ID it will run as (`rollout status` it once it runs)")


class TrainStatus(Message):
    name: str
    environment: str
    running: str = Field("", description="the release running now (its workflow ID)")
    queued: list[str] = Field(default_factory=list, description="versions waiting, in order")
    released: int = 0
    runs: int = 1
    results: list[TrainedRelease] = Field(default_factory=list)
