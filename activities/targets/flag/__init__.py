"""The flag channel's activities: give a flag variant a share of users, and read the share in effect.
Idempotent (writing the share the store already has changes nothing); the stores come from the
constructor (`FlagStore`: the flagd document in a file or an S3 object; a flag in Unleash)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.targets.flag.allowed import check as check_allowed
from activities.targets.flag.file import FileBackend
from activities.targets.flag.s3object import S3ObjectBackend
from activities.targets.flag.store import FlagdStore, FlagStore
from activities.targets.flag.unleash import UnleashStore
from models.flags import FlagChannel, FlagInput, FlagObject, FlagState


class FlagActivities:
    def __init__(self, s3_for: Callable[[FlagObject], Any] | None = None, http: httpx.Client | None = None,
                 extra_stores: dict[str, FlagStore] | None = None) -> None:
        """`extra_stores`: stores the worker builds with other clients (a ConfigMap's: Kubernetes)."""
        self.stores: dict[str, FlagStore] = {"file": FlagdStore(FileBackend()), **(extra_stores or {})}
        if s3_for is not None and "s3" not in self.stores:
            self.stores["s3"] = FlagdStore(S3ObjectBackend(s3_for))
        if http is not None and "unleash" not in self.stores:
            self.stores["unleash"] = UnleashStore(http)

    def _store(self, channel: FlagChannel) -> FlagStore:
        check_allowed(channel)
        store = self.stores.get(channel.store_kind)
        if store is None:
            raise ApplicationError(f"this worker has no {channel.store_kind} flag store", type="Invalid",
                                   non_retryable=True)
        return store

    @activity.defn(name="set_flag_share")
    def set_flag_share(self, request: FlagInput) -> FlagState:
        return self._store(request.channel).write(request.channel, request.variant, request.basis_points,
                                                  request.restore)

    @activity.defn(name="read_flag_share")
    def read_flag_share(self, request: FlagInput) -> FlagState:
        """The share now; with `request.plan`, refuses (before any write) a plan the store cannot write
        or whose phase is below the share now (it would take users away, then give them back)."""
        state = self._store(request.channel).read(request.channel, request.variant, request.plan)
        below = next(((n, p) for n, p in enumerate(request.plan, 1) if p < state.basis_points), None)
        if below is not None:
            raise ApplicationError(
                f"{request.channel.describe()}: phase {below[0]} ({below[1] / 100:g}%) is below the "
                f"{state.basis_points / 100:g}% {request.variant!r} has now: it would take users away and give "
                f"them back; start at {state.basis_points / 100:g}% or above", type="Invalid", non_retryable=True)
        return state
