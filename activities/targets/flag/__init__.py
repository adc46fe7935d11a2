"""The flag channel's activities: give a flag variant a share of users, and read the share in effect.
Idempotent (writing the share the store already has changes nothing); the store comes from the
constructor (`FlagStore`, default a flagd flag-definition file)."""

from __future__ import annotations

from temporalio import activity

from activities.targets.flag.store import FlagdFileStore, FlagStore
from models.flags import FlagInput, FlagState


class FlagActivities:
    def __init__(self, store: FlagStore | None = None) -> None:
        self.store = store or FlagdFileStore()

    @activity.defn(name="set_flag_share")
    def set_flag_share(self, request: FlagInput) -> FlagState:
        return self.store.write(request.channel, request.variant, request.basis_points)

    @activity.defn(name="read_flag_share")
    def read_flag_share(self, request: FlagInput) -> FlagState:
        return self.store.read(request.channel, request.variant)
