"""Heartbeats that do not wait for the activity: while any activity with a heartbeat timeout runs, the
worker heartbeats for it every second (a quarter of a longer timeout), re-sending the details the
activity last gave (or those of its previous attempt, so a resumed wait keeps its deadline). The heartbeat timeout then only has to cover
a lost worker, not the longest API call: a SIGKILLed worker's activity is retried within
`workflows.options.HEARTBEAT` (4 s), while a slow API server (the fault matrix answers in 1.5 s, again
and again) never makes a live attempt look dead. The pattern is the SDK samples' auto-heartbeater, as
an interceptor so that no activity has to remember it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ActivityOutboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

EVERY = 1.0
# The SDK sends at most one heartbeat per throttle interval (by default 0.8 of the timeout): one a second
# leaves a 4 s timeout three seconds of slack. Workers pass this as `max_heartbeat_throttle_interval`.
THROTTLE = timedelta(seconds=EVERY)


class KeepHeartbeating(Interceptor):
    def __init__(self, every: float = EVERY) -> None:
        self.every = every

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Inbound(next, self.every)


class _LastDetails(ActivityOutboundInterceptor):
    """Keeps what the activity heartbeated last."""

    def __init__(self, next: ActivityOutboundInterceptor) -> None:
        super().__init__(next)
        self.details: tuple[Any, ...] = tuple(next.info().heartbeat_details)

    def heartbeat(self, *details: Any) -> None:
        self.details = details
        super().heartbeat(*details)


class _Inbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, every: float) -> None:
        super().__init__(next)
        self.every = every

    def init(self, outbound: ActivityOutboundInterceptor) -> None:  # the SDK calls it before execute_activity
        self.outbound = _LastDetails(outbound)
        super().init(self.outbound)

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        if info.is_local or not info.heartbeat_timeout:
            return await super().execute_activity(input)
        # every second for a 4 s timeout; a quarter of a longer one (an upload's 60 s), no more often
        every = max(self.every, info.heartbeat_timeout.total_seconds() / 4)
        beating = asyncio.create_task(self._beat(every))
        try:
            return await super().execute_activity(input)
        finally:
            beating.cancel()

    async def _beat(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            self.outbound.heartbeat(*self.outbound.details)


def heartbeat_options(interceptors: Sequence[Interceptor] = ()) -> dict[str, Any]:
    """A Worker's keyword arguments for this: the interceptor first (outermost), then the caller's."""
    return {"interceptors": [KeepHeartbeating(), *interceptors], "max_heartbeat_throttle_interval": THROTTLE}
