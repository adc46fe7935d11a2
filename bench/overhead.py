"""Per-step overhead of the canary workflow against a floor, measured in one run on one dev server.

    python -m bench.overhead [--steps 60] [--rounds 3]

(a) floor: a bare workflow doing N sequential no-op activities;
(b) a canary of N setWeight steps with zero-length pauses between them, Kubernetes activities
    short-circuited (fakes under the same activity names, on the same thread pool);
(c) the same canary on an ECS target (its activities short-circuited likewise, its workflows on the
    `aws` family's queue): what the delivery-target seam costs a second target.
Each is run at N and at N/5; the per-step cost is the slope between them, so start-up and the
canary's fixed prepare/promote activities cancel out. Prints (b)/(a), target <= 1.2, and (c)/(b),
target <= 1.05.
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
from models.ecs import EcsRequest, EcsRoutesInput
from models.kubernetes import FinishInput, PrepareCanaryInput, PrepareCanaryResult, SetWeightInput, WeightResult
from models.names import task_queue_for
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


@activity.defn(name="prepare_ecs_canary")
def prepare_ecs(request: EcsRequest) -> PrepareCanaryResult:
    return PrepareCanaryResult(total_replicas=10, stable_image="registry.local/app:1", container="app")


@activity.defn(name="set_ecs_routes")
def set_routes_ecs(request: EcsRoutesInput) -> WeightResult:
    weight = request.routes.weight
    canary = -(-10 * weight // 100)
    return WeightResult(weight=weight, canary_replicas=canary, stable_replicas=10, actual_weight=float(weight),
                        changed=True)


@activity.defn(name="promote_ecs_canary")
def promote_ecs(request: EcsRequest) -> None:
    return None


@activity.defn(name="abort_ecs_canary")
def abort_ecs(request: EcsRequest) -> None:
    return None


ECS = {"region": "us-east-1", "cluster": "bench", "service": "app", "container": "app",
       "network": {"subnets": ["subnet-0123456789abcdef0"], "securityGroups": ["sg-0123456789abcdef0"]},
       "loadBalancer": {"listener": "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/b/1/2",
                        "targetGroups": ["arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/a/1",
                                         "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/b/2"],
                        "containerPort": 8080}}


def canary_document(name: str, steps: int, target: str = "kubernetes") -> dict:
    body = []
    for i in range(steps):
        body += [{"setWeight": round(100 * (i + 1) / steps)}, {"pause": {"duration": "0s"}}]
    canary = {"steps": body} if target == "ecs" else {"stableService": "app", "canaryService": "app-canary", "steps": body}
    return {
        "apiVersion": "rollouts.durable.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name, "environment": "bench"},
        "spec": {"target": {"ecs": ECS} if target == "ecs" else {"kubernetes": {"namespace": "bench", "deployment": "app"}},
                 "image": "registry.local/app:2", "strategy": {"canary": canary}},
    }


async def time_floor(client: Client, queue: str, steps: int, run: int) -> float:
    started = time.perf_counter()
    await client.execute_workflow(Floor.run, steps, id=f"bench-floor-{steps}-{run}", task_queue=queue)
    return time.perf_counter() - started


async def time_canary(client: Client, queue: str, steps: int, run: int, target: str = "kubernetes") -> float:
    rollout = parse_rollout(canary_document(f"{target}-canary-{steps}-{run}", steps, target))
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
                fakes = [noop, prepare, set_weight, promote, abort, prepare_ecs, set_routes_ecs, promote_ecs, abort_ecs]
                async with Worker(client, task_queue="bench", workflows=[Floor, CanaryRollout], activities=fakes,
                                  activity_executor=pool), \
                        Worker(client, task_queue=task_queue_for("bench", "aws"), workflows=[CanaryRollout],
                               activities=fakes, activity_executor=pool):
                    await time_floor(client, "bench", small, -1)  # warm up every path
                    await time_canary(client, "bench", small, -1)
                    await time_canary(client, "bench", small, -1, "ecs")
                    floor = {small: [], steps: []}
                    canary = {small: [], steps: []}
                    ecs = {small: [], steps: []}
                    for run in range(rounds):  # interleaved, so drift hits all alike
                        for n in (small, steps):
                            floor[n].append(await time_floor(client, "bench", n, run))
                            canary[n].append(await time_canary(client, "bench", n, run))
                            ecs[n].append(await time_canary(client, "bench", n, run, "ecs"))
        finally:
            server.stop()
    med = {k: {n: statistics.median(v) for n, v in d.items()}
           for k, d in (("floor", floor), ("canary", canary), ("ecs", ecs))}
    per_floor = (med["floor"][steps] - med["floor"][small]) / (steps - small)
    per_canary = (med["canary"][steps] - med["canary"][small]) / (steps - small)
    per_ecs = (med["ecs"][steps] - med["ecs"][small]) / (steps - small)
    print(f"floor : {steps} no-op activities in {med['floor'][steps]:.3f}s (median of {rounds}); "
          f"{per_floor * 1000:.2f} ms per step")
    print(f"canary: {steps} setWeight steps + {steps} zero pauses in {med['canary'][steps]:.3f}s; "
          f"{per_canary * 1000:.2f} ms per step")
    print(f"whole-run ratio (b)/(a) at N={steps}: {med['canary'][steps] / med['floor'][steps]:.3f}")
    print(f"per-step overhead ratio (b)/(a): {per_canary / per_floor:.3f}   (target <= 1.2)")
    print(f"ecs   : {steps} setWeight steps + {steps} zero pauses in {med['ecs'][steps]:.3f}s; "
          f"{per_ecs * 1000:.2f} ms per step; (c)/(a) {per_ecs / per_floor:.3f}")
    print(f"per-step ratio ECS / Kubernetes canary (c)/(b): {per_ecs / per_canary:.3f}   (target <= 1.05)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.steps, args.rounds))
