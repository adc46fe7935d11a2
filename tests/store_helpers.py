"""Shared pieces of the store-channel tests: a Release document for any channel, a worker with the
store activities (and the analysis `measure`) on a time-skipping client, waiting for a phase."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.analysis import AnalysisActivities
from localcluster.stores.standin import Reply, Request, StandIn
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


class HealthStandIn(StandIn):
    """A crash-reporting service's answer for a web-provider gate: GET /health → `{"crashFreeUsers": x}`."""

    name = "health"

    def __init__(self, crash_free: float = 99.9) -> None:
        super().__init__()
        self.crash_free = crash_free

    def handle(self, request: Request) -> Reply:
        return Reply(200, {"crashFreeUsers": self.crash_free})

    def gate(self, minimum: float = 99.5) -> dict[str, Any]:
        """`spec.analysis` with a template `crash-free` reading it."""
        return {"templates": [{"name": "crash-free", "metrics": [{
            "name": "crash-free-users", "successCondition": f"result >= {minimum}",
            "provider": {"web": {"url": f"{self.url}/health", "jsonPath": "crashFreeUsers"}}}]}]}


def skipping_clock(env, loop) -> Callable[[], float]:
    """The time-skipping server's time, for a stand-in whose store moves with days (Apple's phased
    release): read from the stand-in's threads through the test's event loop."""
    def now() -> float:
        return asyncio.run_coroutine_threadsafe(env.get_current_time(), loop).result(timeout=10).timestamp()

    return now


async def assert_history_clean(handle, standin: StandIn, *secrets: str) -> int:
    """No credential in the workflow's history: neither the bearer tokens the stand-in received nor the
    given secrets (a key's body, a client secret). Returns how many payloads were scanned."""
    from tests.test_secrets import payload_texts

    tokens = {r.headers["authorization"][7:] for r in standin.requests
              if r.headers.get("authorization", "").startswith("Bearer ")}
    wanted = [s for s in {*tokens, *secrets} if len(s) >= 8]
    assert wanted, "nothing to look for"
    texts = payload_texts(await handle.fetch_history())
    found = [s[:12] for s in wanted if any(s in t for t in texts)]
    assert found == [], f"credentials in the history: {found}"
    return len(texts)


def key_body(pem: str) -> str:
    """A distinctive line of a PEM key (what would show if the key leaked)."""
    return max(pem.splitlines(), key=len)


async def killed_mid_phase(dev_server, dev_client, spawn, tmp_path, release, queue: str, after: str | None = None):
    """A release on `rollout worker` processes: SIGKILLed right `after` an activity (its first attempt)
    if one is named, then SIGKILLed while phase 1 bakes; the next worker takes over each time; then
    `promote --full`. The final status."""
    import json

    from localcluster.faults import read_journal
    from models.approvals import PromoteRequest
    from models.release import ReleaseInput

    journal, plan = tmp_path / "kills.jsonl", tmp_path / "plan.json"
    plan.write_text(json.dumps({"journal": str(journal), "points": [
        {"when": "after", "activities": [after], "max": 1}] if after else []}))
    env = {"DURABLE_ROLLOUTS_KILL_PLAN": str(plan), "ROLLOUT_USER": "ci"}
    worker = spawn(dev_server.address, queue, env=env)
    handle = await dev_client.start_workflow(StagedRelease.run, ReleaseInput(release=release),
                                             id=f"{release.rollout_id}-{queue}", task_queue=queue)
    if after:
        await eventually(worker.exited, timeout=90, what=f"the worker killed after {after}")
        assert [k["activity"] for k in read_journal(journal)] == [after]
        worker = spawn(dev_server.address, queue, env=env)
    await reaches(handle, lambda s: s.reason == "Baking" and s.current_step == 0, "phase 1 baking", timeout=90)
    worker.kill()
    spawn(dev_server.address, queue, env=env)
    await reaches(handle, lambda s: s.reason == "Baking" and s.current_step == 0, "still phase 1, baking", timeout=30)
    await handle.execute_update("promote", PromoteRequest(by="ci", full=True))
    return await asyncio.wait_for(handle.result(), 90)
