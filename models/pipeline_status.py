"""A pipeline's status tree — stage → wave → target — as `rollout status` shows it: where the bundle is,
where it was verified, what it waits for (kept in the pipeline's RolloutStatus)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from models.specbase import Message


class TargetState(Message):
    """One target of a wave, as the pipeline saw it."""

    key: str
    context: str
    region: str = ""
    workflow_id: str = ""
    state: Literal["pending", "running", "verified", "failed", "aborted", "rolledBack", "rollbackFailed"] = "pending"
    phase: str = ""
    reason: str = ""
    message: str = ""
    verified_revision: str = Field("", description="the image the target was observed running, settled")
    verified_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class CheckResult(Message):
    name: str
    phase: str
    value: str = ""
    message: str = ""
    at: datetime | None = None


class WaveState(Message):
    name: str
    targets: list[TargetState]
    state: Literal["pending", "running", "done", "failed", "skipped"] = "pending"


class StageState(Message):
    name: str
    image: str = ""
    state: Literal["pending", "gate", "running", "verified", "failed", "skipped"] = "pending"
    checks: list[CheckResult] = Field(default_factory=list)
    waves: list[WaveState] = Field(default_factory=list)
    verified_at: datetime | None = None


class PipelineTree(Message):
    """stage → wave → target: where the bundle is, where it was verified, what it waits for."""

    bundle: dict[str, str] = Field(default_factory=dict, description="name -> pinned image")
    stages: list[StageState] = Field(default_factory=list)

