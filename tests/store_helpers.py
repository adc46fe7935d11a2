"""Shared pieces of the store-channel tests: a Release document for any channel, a worker with the
store activities (and the analysis `measure`) on a time-skipping client, waiting for a phase."""

from __future__ import annotations

import concurrent.futures
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.analysis import AnalysisActivities
from models.release import Release, parse_release
from models.status import RolloutStatus
from tests.helpers import eventually
from workflows.release import StagedRelease


def store_release(name: str, channel: dict[str, Any], artifact: dict[str, Any], phases: list[dict], **spec) -> Release:
    return parse_release({
        "apiVersion": "rollouts.durable.dev/v1alpha1", "kind": "Release",
        "metadata": {"name": name, "environment": "test"},
        "spec": {"artifact": artifact, "channel": channel, "phases": phases, **spec}})


@contextlib.asynccontextmanager
async def store_worker(client: Client, queue: str, activities: list, providers: dict | None = None) -> AsyncIterator[None]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        async with Worker(client, task_queue=queue, workflows=[StagedRelease], activity_executor=pool,
                          activities=[*activities, AnalysisActivities(providers or {}).measure]):
            yield


async def status(handle) -> RolloutStatus:
    return await handle.query("status", result_type=RolloutStatus)


async def reaches(handle, check, what: str, timeout: float = 30) -> RolloutStatus:
    """The status once `check(status)` holds."""
    async def probe():
        s = await status(handle)
        return s if check(s) else None

    return await eventually(probe, timeout=timeout, what=what)
