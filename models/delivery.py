"""What strategies and delivery targets say to each other, in no target's terms (workflows/targets/): what
a prepared candidate, an exposure change, an in-place update and a warm revision come back as, and what a
target can do (`Capabilities`). Each target's activities have their own inputs (models/kubernetes.py);
these results are shared, so a strategy reads every target's answer the same way."""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

from pydantic import Field

from models.specbase import Message


class Capabilities(Message):
    """What a delivery target can do, declared on its record. Not yet read by validation: with Kubernetes the
    only target every capability is there (its routers' own limits are checked in models/routing.py); the
    check that refuses a strategy or step the chosen target cannot do comes with the second target."""

    weights: bool = Field(description="a canary's share of traffic set in percent (setWeight)")
    header_routes: bool = Field(description="requests matching a header or cookie sent to the canary (setHeaderRoute)")
    mirrors: bool = Field(description="a copy of requests sent to the canary (setMirrorRoute)")
    instant_switch: bool = Field(description="blue-green: all traffic moved to the other side in one call")
    warm_rollback_window: bool = Field(description="earlier revisions kept running after Healthy (rollbackWindow)")
    in_place_rolling: bool = Field(description="rollingUpdate and recreate through the target's own update, undo")


class Wording(NamedTuple):
    """What a strategy's texts (steps, records, messages) call the target's parts (each adapter's `words`)."""

    production: str  # where production traffic enters: a Service's name, "the production listener"
    preview: str  # where the preview is tested
    instances: str  # "pods", "tasks"
    completion: str  # what a blue-green's completion does


class PrepareCanaryResult(Message):
    """The candidate beside the stable version: how many instances the target wants, what it ran."""

    total_replicas: int
    stable_image: str
    container: str


class WeightResult(Message):
    weight: int
    canary_replicas: int
    stable_replicas: int
    actual_weight: float
    changed: bool


class InPlaceUpdate(Message):
    """What a rolling update, recreate, undo or restart asks of the target's own update mechanism."""

    kind: Literal["RollingUpdate", "Recreate", "Undo", "Restart"]
    image: str
    max_surge: int | str | None = None
    max_unavailable: int | str | None = None
    to_revision: int = 0  # Undo: 0 is the revision before the current one
    restarted_at: str = ""  # Restart: the workflow's time, so a retried attempt sets the same value

    def describe(self) -> str:
        if self.kind == "Restart":
            return "restart the pods of the current version"
        if self.kind == "Undo":
            return f"undo to revision {self.to_revision}" if self.to_revision else "undo to the previous revision"
        return f"{self.kind} to {self.image}"


def surge_and_unavailable(max_surge: int | str | None, max_unavailable: int | str | None,
                          replicas: int) -> tuple[int, int]:
    """An in-place update's maxSurge (default 25 %, rounded up) and maxUnavailable (default 0, rounded down)
    in instances, as a Deployment reads them; both 0 would move nothing, so that is one surge."""
    def count(value: int | str | None, round_up: bool) -> int:
        if isinstance(value, str):
            share = replicas * int(value.rstrip("%")) / 100
            return math.ceil(share) if round_up else math.floor(share)
        return value or 0

    surge, unavailable = count("25%" if max_surge is None else max_surge, True), count(max_unavailable, False)
    return (1 if surge == unavailable == 0 else surge), unavailable


class RollOutResult(Message):
    previous_image: str
    previous_revision: int
    revision: int
    replicas: int
    image: str = ""  # what runs now


class BlueGreenPrepared(Message):
    total_replicas: int
    stable_image: str
    stable_hash: str = Field(description="which instances are the old version (Kubernetes: their pod-template-hash, "
                                         "which the active Service pins)")
    container: str


class WarmRevision(Message):
    revision: int
    image: str
