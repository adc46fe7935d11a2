"""Many rollouts waiting at once, measured in one run on one machine (README, "Benchmark").

    python -m bench.scale [--sizes 1000,5000,10000] [--workers 2,4] [--sample 200] [--cache 1000]

For each size N, on a fresh dev server (its SQLite file) and `bench.scale_worker` processes (the real
workflows, the Kubernetes activities short-circuited): start N canaries that stop at `pause: {}`
(64 starts in flight), and report
- start throughput (rollouts/s) against the floor: starting the same number of empty workflows (no
  worker, the start RPC alone) on a fresh server;
- the time for all N to reach the pause (visibility: RolloutPhase = Paused) and the rate;
- the worker's resident memory (VmRSS) once all wait (target < 1 GB at 10,000);
- `promote` update latency p50/p99 over a random sample (target p99 < 1 s): with N above the worker's
  cache most of the sample is replayed from its history first.
Then the largest size below 10,000 again with 2 and 4 workers: the throughput ratio to one worker.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from temporalio.client import Client

from localcluster.devserver import DevServer, free_port, stop_process
from models.approvals import PromoteRequest
from models.spec import parse_rollout
from starters.commands import start_workflow
from workers.temporal import TemporalSettings, connect

IN_FLIGHT = 64
REPO = Path(__file__).resolve().parent.parent


def rollout_document(name: str, steps: list[dict] | None = None) -> dict:
    return {
        "apiVersion": "rollouts.durable.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name, "environment": "bench"},
        "spec": {"target": {"kubernetes": {"namespace": "bench", "deployment": "app"}},
                 "image": "registry.local/app:2",
                 "strategy": {"canary": {"stableService": "app", "canaryService": "app-canary",
                                         "steps": steps or [{"setWeight": 10}, {"pause": {}}, {"setWeight": 100}]}}},
    }


class Workers:
    """`bench.scale_worker` processes on one queue."""

    def __init__(self, address: str, queue: str, count: int, env: dict[str, str], log: Path):
        self.address, self.queue, self.env, self.log = address, queue, env, log
        self.processes = [self.spawn() for _ in range(count)]

    def spawn(self) -> subprocess.Popen:
        with open(self.log, "ab") as log:
            offset = log.tell()
            process = subprocess.Popen([sys.executable, "-m", "bench.scale_worker", "--address", self.address,
                                        "--task-queue", self.queue], cwd=REPO, env={**os.environ, **self.env},
                                       stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while b"worker ready" not in self.log.read_bytes()[offset:]:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bench worker did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)
        return process

    def rss_mb(self) -> list[float]:
        sizes = []
        for process in self.processes:
            status = Path(f"/proc/{process.pid}/status").read_text()
            kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
            sizes.append(kb / 1024)
        return sizes

    def stop(self) -> None:
        for process in self.processes:
            stop_process(process, grace=10)


async def start_all(count: int, start) -> float:
    """Seconds to make `count` start calls, IN_FLIGHT at a time."""
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(i: int) -> None:
        async with gate:
            await start(i)

    began = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return time.perf_counter() - began


async def paused(client: Client, queue: str) -> int:
    return (await client.count_workflows(f"TaskQueue = '{queue}' AND RolloutPhase = 'Paused'")).count


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def floor_rate(count: int) -> float:
    """Empty workflows started with no worker: the start RPC on this server alone."""
    with tempfile.TemporaryDirectory() as tmp:
        server = DevServer(db_file=Path(tmp) / "floor.db", port=free_port(), ui_port=None).start()
        try:
            client = await connect(TemporalSettings(address=server.address, namespace="default", ui=""))
            took = await start_all(count, lambda i: client.start_workflow("BenchEmpty", id=f"empty-{i}",
                                                                          task_queue="nobody"))
        finally:
            server.stop()
    return count / took


async def measure(size: int, workers: int, sample: int, cache: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        server = DevServer(db_file=Path(tmp) / "bench.db", port=free_port(), ui_port=None).start()
        env = {"ROLLOUT_MAX_CACHED_WORKFLOWS": str(cache)}
        pool = Workers(server.address, "bench", workers, env, Path(tmp) / "workers.log")
        try:
            client = await connect(TemporalSettings(address=server.address, namespace="default", ui=""))
            began = time.perf_counter()
            took = await start_all(size, lambda i: start_workflow(
                client, parse_rollout(rollout_document(f"app-{i}")), "bench", "bench"))
            while (waiting := await paused(client, "bench")) < size:
                if time.perf_counter() - began > 3600:
                    raise RuntimeError(f"only {waiting} of {size} reached the pause within an hour")
                await asyncio.sleep(0.5)
            all_paused = time.perf_counter() - began
            rss = pool.rss_mb()
            latencies = []
            for i in random.Random(size).sample(range(size), min(sample, size)):
                handle = client.get_workflow_handle(f"rollout/bench/app-{i}")
                sent = time.perf_counter()
                await handle.execute_update("promote", PromoteRequest(by="bench"))
                latencies.append(time.perf_counter() - sent)
        finally:
            pool.stop()
            server.stop()
    return {"size": size, "workers": workers, "start_rate": size / took, "paused_s": all_paused,
            "paused_rate": size / all_paused, "rss_mb": max(rss), "rss_total_mb": sum(rss),
            "p50": statistics.median(latencies), "p99": quantile(latencies, 0.99)}


def show(r: dict, floor: float) -> None:
    print(f"N={r['size']:>6} workers={r['workers']}: start {r['start_rate']:6.0f}/s ({r['start_rate'] / floor:.2f} of "
          f"the floor), all paused in {r['paused_s']:6.1f}s ({r['paused_rate']:5.0f}/s), worker RSS "
          f"{r['rss_mb']:6.0f} MB (all workers {r['rss_total_mb']:.0f}), promote p50 {r['p50'] * 1000:4.0f} ms "
          f"p99 {r['p99'] * 1000:5.0f} ms", flush=True)


async def main(sizes: list[int], worker_counts: list[int], sample: int, cache: int) -> None:
    floor = await floor_rate(min(max(sizes), 5000))
    print(f"floor: {floor:.0f} empty workflow starts/s (no worker), {IN_FLIGHT} in flight", flush=True)
    single = {}
    for size in sizes:
        single[size] = await measure(size, 1, sample, cache)
        show(single[size], floor)
    scaled = max((s for s in sizes if s < 10_000), default=min(sizes))
    for count in worker_counts:
        r = await measure(scaled, count, sample, cache)
        show(r, floor)
        print(f"   throughput with {count} workers / 1 worker at N={scaled}: "
              f"{r['paused_rate'] / single[scaled]['paused_rate']:.2f}", flush=True)
    largest = single[max(sizes)]
    print(f"ratios at N={largest['size']}: worker RSS / 1 GB target {largest['rss_mb'] / 1024:.2f}; "
          f"promote p99 / 1 s target {largest['p99']:.2f}; start rate / floor {largest['start_rate'] / floor:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,10000")
    parser.add_argument("--workers", default="2,4")
    parser.add_argument("--sample", type=int, default=200)
    parser.add_argument("--cache", type=int, default=1000, help="max cached workflows per worker")
    args = parser.parse_args()
    asyncio.run(main([int(s) for s in args.sizes.split(",")], [int(w) for w in args.workers.split(",") if w],
                     args.sample, args.cache))
