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
