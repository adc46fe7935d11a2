"""Per-step overhead of the canary workflow against a floor, measured in one run on one dev server.

    python -m bench.overhead [--steps 60] [--rounds 3]

(a) floor: a bare workflow doing N sequential no-op activities;
(b) a canary of N setWeight steps with zero-length pauses between them, Kubernetes activities
    short-circuited (fakes under the same activity names, on the same thread pool).
Each is run at N and at N/5; the per-step cost is the slope between them, so start-up and the
canary's fixed prepare/promote activities cancel out. Prints the ratio (b)/(a); target <= 1.2.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import statistics
import tempfile
import time
from pathlib import Path

from temporalio import activity
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from bench.floor import Floor, noop
from localcluster.devserver import DevServer, free_port
from models.kubernetes import FinishInput, PrepareCanaryInput, PrepareCanaryResult, SetWeightInput, WeightResult
from models.spec import parse_rollout
from starters.commands import start_workflow
from workflows.canary import CanaryRollout


@activity.defn(name="prepare_canary")
def prepare(request: PrepareCanaryInput) -> PrepareCanaryResult:
    return PrepareCanaryResult(total_replicas=10, stable_image="registry.local/app:1", container="app")


@activity.defn(name="set_canary_weight")
def set_weight(request: SetWeightInput) -> WeightResult:
    canary = -(-10 * request.weight // 100)
    return WeightResult(weight=request.weight, canary_replicas=canary, stable_replicas=10 - canary,
                        actual_weight=canary * 10.0, changed=True)


@activity.defn(name="promote_canary")
def promote(request: FinishInput) -> None:
    return None


@activity.defn(name="abort_canary")
def abort(request: FinishInput) -> None:
    return None


def canary_document(name: str, steps: int) -> dict:
    body = []
    for i in range(steps):
        body += [{"setWeight": round(100 * (i + 1) / steps)}, {"pause": {"duration": "0s"}}]
    return {
        "apiVersion": "rollouts.durable.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name, "environment": "bench"},
        "spec": {"target": {"kubernetes": {"namespace": "bench", "deployment": "app"}},
                 "image": "registry.local/app:2",
                 "strategy": {"canary": {"stableService": "app", "canaryService": "app-canary", "steps": body}}},
    }


async def time_floor(client: Client, queue: str, steps: int, run: int) -> float:
    started = time.perf_counter()
    await client.execute_workflow(Floor.run, steps, id=f"bench-floor-{steps}-{run}", task_queue=queue)
    return time.perf_counter() - started


async def time_canary(client: Client, queue: str, steps: int, run: int) -> float:
    rollout = parse_rollout(canary_document(f"canary-{steps}-{run}", steps))
    started = time.perf_counter()
    handle = await start_workflow(client, rollout, queue, "bench")
    result = await handle.result()
    assert result.phase.value == "Healthy", result
    return time.perf_counter() - started


async def main(steps: int, rounds: int) -> None:
    small = max(2, steps // 5)
    with tempfile.TemporaryDirectory() as tmp:
        server = DevServer(db_file=Path(tmp) / "bench.db", port=free_port(), ui_port=None).start()
        try:
            client = await Client.connect(server.address, data_converter=pydantic_data_converter)
            with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
                async with Worker(client, task_queue="bench", workflows=[Floor, CanaryRollout],
                                  activities=[noop, prepare, set_weight, promote, abort], activity_executor=pool):
                    await time_floor(client, "bench", small, -1)  # warm up both paths
                    await time_canary(client, "bench", small, -1)
                    floor = {small: [], steps: []}
                    canary = {small: [], steps: []}
                    for run in range(rounds):  # interleaved, so drift hits both alike
                        for n in (small, steps):
                            floor[n].append(await time_floor(client, "bench", n, run))
                            canary[n].append(await time_canary(client, "bench", n, run))
        finally:
            server.stop()
    med = {k: {n: statistics.median(v) for n, v in d.items()} for k, d in (("floor", floor), ("canary", canary))}
    per_floor = (med["floor"][steps] - med["floor"][small]) / (steps - small)
    per_canary = (med["canary"][steps] - med["canary"][small]) / (steps - small)
    print(f"floor : {steps} no-op activities in {med['floor'][steps]:.3f}s (median of {rounds}); "
          f"{per_floor * 1000:.2f} ms per step")
    print(f"canary: {steps} setWeight steps + {steps} zero pauses in {med['canary'][steps]:.3f}s; "
          f"{per_canary * 1000:.2f} ms per step")
    print(f"whole-run ratio (b)/(a) at N={steps}: {med['canary'][steps] / med['floor'][steps]:.3f}")
    print(f"per-step overhead ratio (b)/(a): {per_canary / per_floor:.3f}   (target <= 1.2)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.steps, args.rounds))
