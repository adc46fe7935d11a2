"""Scale-out the Temporal way: more `rollout worker` processes on the same task queues. Three workers
share six canaries on the real local cluster; the one holding most of them is SIGKILLed while they wait
at a pause; their promotions reach the survivors (after the sticky timeout) and every rollout finishes
Healthy on them. And the CLI routes each target family to its own task queue, so a worker serves only
the families it has credentials for; a SIGTERMed worker hands its waits over at once."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import yaml
from temporalio.api.enums.v1 import EventType, PendingActivityState

from localcluster.workload import deploy
from models.approvals import PromoteRequest
from models.names import task_queue_for
from models.status import Phase
from starters.commands import start_workflow
from tests.helpers import canary_rollout, eventually, finished, paused_at

REPO = Path(__file__).resolve().parent.parent


def identity(worker) -> str:
    return f"{worker.process.pid}@{socket.gethostname()}"  # the SDK's default worker identity


async def worker_of(handle) -> str:
    """The worker that ran the rollout's last workflow task (the one that has it cached)."""
    events = (await handle.fetch_history()).events
    return [e.workflow_task_started_event_attributes.identity for e in events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED][-1]


async def activity_workers(handle, after: int = 0) -> list[str]:
    events = (await handle.fetch_history()).events
    return [e.activity_task_started_event_attributes.identity for e in events[after:]
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED]


async def test_three_workers_share_rollouts_and_the_survivors_carry_on_a_killed_ones(
    dev_server, dev_client, kube_api, worker_processes, unique
):
    namespace = f"t-{unique}"
    services = [f"svc{i}" for i in range(6)]
    for name in services:
        deploy(kube_api, namespace, name, f"registry.local/{name}:1.0.0", replicas=2, rps=50)
    queue = f"scale-{unique}"
    workers = [worker_processes(dev_server.address, queue, "--targets", "kubernetes", "--sticky-timeout", "2")
               for _ in range(3)]
    pids = {identity(w): w for w in workers}
    handles = [await start_workflow(dev_client, canary_rollout(
        name=f"{name}-{unique}", namespace=namespace, deployment=name, image=f"registry.local/{name}:2.0.0",
        steps=[{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]), queue, "test") for name in services]
    await asyncio.gather(*(paused_at(h, 1) for h in handles))

    ran = [who for h in handles for who in await activity_workers(h)]
    assert set(ran) <= set(pids) and len(set(ran)) >= 2, f"the workers shared the activities: {Counter(ran)}"
    holders = {h.id: await worker_of(h) for h in handles}
    victim_id, held = Counter(holders.values()).most_common(1)[0]
    assert held >= 2 and victim_id in pids
    victim = pids[victim_id]
    seen = {h.id: len((await h.fetch_history()).events) for h in handles}

    victim.kill()  # SIGKILL: its sticky queue goes unanswered, its cache is gone
    killed = time.monotonic()
    await asyncio.gather(*(h.execute_update("promote", PromoteRequest(by="sre")) for h in handles))
    promoted = time.monotonic() - killed
    finals = await asyncio.gather(*(finished(h, 90) for h in handles))
    assert [f.phase for f in finals] == [Phase.HEALTHY] * 6
    for h in handles:
        after = await activity_workers(h, seen[h.id])
        assert after and victim_id not in after, f"{h.id}: the survivors ran its last steps, not {victim_id}"
        assert await worker_of(h) != victim_id
    assert not any(w.exited() for w in workers if w is not victim)
    assert promoted < 30, f"the promotions took {promoted:.1f}s to reach the survivors"


async def test_the_cli_routes_each_target_family_to_its_task_queue(dev_server, dev_client, tmp_path, unique):
    env = {**os.environ, "TEMPORAL_ADDRESS": dev_server.address, "ROLLOUT_TASK_QUEUE": f"families-{unique}"}
    routed = {}
    for example, family in (("checkout-flag.yaml", "updater"), ("intune-rings.yaml", "stores")):
        document = yaml.safe_load((REPO / "examples" / "releases" / example).read_text())
        document["metadata"]["name"] = f"{document['metadata']['name']}-{unique}"
        spec = tmp_path / example
        spec.write_text(yaml.safe_dump(document))
        done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "starters.cli", "release", "publish",
                                                        "-f", str(spec)], cwd=REPO, env=env, capture_output=True,
                                       text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        rid = f"rollout/{document['metadata']['environment']}/{document['metadata']['name']}"
        handle = dev_client.get_workflow_handle(rid)
        routed[family] = (await handle.describe()).raw_description.execution_config.task_queue.name
        await handle.terminate("test over")
    assert routed == {family: task_queue_for(f"families-{unique}", family) for family in ("updater", "stores")}
    assert routed["updater"] == f"families-{unique}-updater"


async def test_a_sigtermed_worker_hands_its_waits_over_at_once(dev_server, dev_client, kube_api, worker_processes,
                                                              unique):
    """A canary waiting for slow pods (25 s to ready): its worker gets SIGTERM mid-wait; the wait fails over
    to the other worker within seconds — not after the 10 s drain or the heartbeat timeout — and the
    rollout ends Healthy; the drained worker exits 0. (Run 20: with pods ready in 8 s, a loaded machine
    saw the first attempt late and the second one ended before it was seen: the wait must outlast the look.)"""
    from kubernetes import client

    from localcluster.behaviour import declare_images

    namespace, queue = f"t-{unique}", f"drain-{unique}"
    image = f"registry.local/web:drain-{unique}"
    declare_images(client.CoreV1Api(kube_api), {image: {"readyDelaySeconds": 25}})
    deploy(kube_api, namespace, "web", "registry.local/web:1.0.0", replicas=2, rps=50)
    workers = [worker_processes(dev_server.address, queue, "--targets", "kubernetes") for _ in range(2)]
    handle = await start_workflow(dev_client, canary_rollout(
        name=f"web-{unique}", namespace=namespace, deployment="web", image=image,
        steps=[{"setWeight": 50}, {"setWeight": 100}]), queue, "test")

    async def waiting(attempt: int):
        pending = (await handle.describe()).raw_description.pending_activities
        found = [a for a in pending if a.activity_type.name == "set_canary_weight" and a.attempt == attempt
                 and a.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED]
        return found[0] if found else None

    first = await eventually(lambda: waiting(1), timeout=60, what="the slow setWeight running")
    holder = next(w for w in workers if identity(w) == first.last_worker_identity)
    holder.process.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    second = await eventually(lambda: waiting(2), timeout=30, interval=0.1, what="the wait on the other worker")
    handed_over = time.monotonic() - sent
    assert second.last_worker_identity != first.last_worker_identity
    assert handed_over < 5, f"handed over after {handed_over:.1f}s"
    assert holder.process.wait(20) == 0
    assert (await finished(handle, 150)).phase is Phase.HEALTHY
