"""Delivery targets as the strategies see them: the `DeliveryTarget` Protocol, and `delivery_for` which
picks the adapter the spec's target names (its record in models/targets.py). The strategy workflows
(canary, blue-green, A/B, rolling, recreate, undo/restart, the rollback window) decide what happens and
when — steps, pauses, analysis, approvals, aborts —; the adapter decides how its target does it: which
activities, with which inputs, on which options. Every call returns the activity's handle, so the strategy
chooses whether an abort may interrupt it (`control.run_interruptible`) or it runs to its end (`await`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.delivery import (
        BlueGreenPrepared,
        Capabilities,
        InPlaceUpdate,
        PrepareCanaryResult,
        RollOutResult,
        WarmRevision,
        WeightResult,
        Wording,
    )
    from models.routing import RouteState, SetCanaryScale
    from models.spec import BlueGreenStrategy, CanaryStrategy, RolloutSpecBody
    from models.targets import Target, resolve

Handle = Awaitable  # a started activity (workflow.ActivityHandle): awaited, or run interruptibly
Revisions = Callable[[str], Awaitable[str]]  # analysis role (Latest, Stable) -> that side's revision label


class DeliveryTarget(Protocol):
    """What a strategy asks of the place it delivers to. Built per workflow run from the spec."""

    capabilities: Capabilities
    words: Wording

    def revisions(self, shape: Literal["canary", "blueGreen", "inPlace"]) -> Revisions | None:
        """For analyses' valueFrom.podTemplateHashValue: which revision each role's instances run."""

    # A canary (and an A/B test): the candidate beside the stable version, exposure shifted capacity first.
    def prepare_canary(self, canary: CanaryStrategy) -> Handle[PrepareCanaryResult]: ...
    def set_routes(self, canary: CanaryStrategy, step: int, total: int, routes: RouteState,
                   canary_scale: SetCanaryScale | None, summary: str) -> Handle[WeightResult]: ...
    def promote_canary(self, canary: CanaryStrategy, prepared: PrepareCanaryResult) -> Handle[None]: ...
    def abort_canary(self, canary: CanaryStrategy, prepared: PrepareCanaryResult) -> Handle[None]: ...

    # Blue-green: the preview beside the active version, an instant (or gradual) switch, a warm old side.
    def prepare_blue_green(self, blue_green: BlueGreenStrategy) -> Handle[BlueGreenPrepared]: ...
    def blue_green_prepared(self, prepared: BlueGreenPrepared) -> None: ...
    @property
    def blue_green_switchable(self) -> bool: ...  # the old side is known: a switch back is possible
    def scale_preview(self, replicas: int) -> Handle[int]: ...
    def shift_traffic(self, weight: int) -> Handle[Any]: ...
    def switch_active(self, to: Literal["preview", "stable"], summary: str) -> Handle[Any]: ...
    def complete_blue_green(self) -> Handle[Any]: ...
    def abort_blue_green(self) -> Handle[Any]: ...

    # In place: the target's own update (rolling, recreate), undo to an earlier revision, restart.
    def roll_out(self, update: InPlaceUpdate, summary: str) -> Handle[RollOutResult]: ...
    def undo(self) -> Handle[str]: ...

    # The rollback window after Healthy: earlier revisions kept warm, one switched to at once.
    def open_window(self, service: str | None, revisions: int) -> Handle[list[WarmRevision]]: ...
    def switch_to_warm(self, revision: int) -> Handle[Any]: ...
    def close_window(self) -> Handle[Any]: ...


# Each target's adapter, from its record (models/targets.py): adding a target adds no entry here.
ADAPTERS = {kind: resolve(model.DELIVERY) for kind, model in Target.models().items()}


def delivery_for(spec: RolloutSpecBody, rollout_id: str) -> DeliveryTarget:
    """The adapter of the target `spec.target` names."""
    return ADAPTERS[spec.target.kind](spec, rollout_id)
