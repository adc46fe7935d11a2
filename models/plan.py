"""What the control plane needs of a document it runs: a Rollout (models/spec.py) or a Release
(models/release.py). Each names its run (`rollout_id`), shows what it does (`strategy_name`,
`target_description`, `version`), and its spec carries the control plane's own blocks: approvals,
analysis templates, execution windows, notifications and the steps' descriptions."""

from __future__ import annotations

from typing import Any, Protocol

from models.analysis import AnalysisSpec
from models.approvals import Approval, ApprovalPolicy
from models.notifications import NotificationChannel
from models.schedule import ExecutionWindows


class PlanSpec(Protocol):
    analysis: AnalysisSpec
    approval: Approval | None
    execution_windows: ExecutionWindows | None
    notifications: list[NotificationChannel]
    rollback_window: Any

    def approvals(self) -> list[tuple[str, ApprovalPolicy]]: ...

    def step_descriptions(self) -> list[str]: ...


class Metadata(Protocol):
    name: str
    environment: str


class Plan(Protocol):
    metadata: Metadata
    spec: PlanSpec

    @property
    def rollout_id(self) -> str: ...

    @property
    def strategy_name(self) -> str: ...

    @property
    def target_description(self) -> str: ...

    @property
    def version(self) -> str: ...

    def digest(self) -> str: ...
