"""A pipeline wave's scheduling overhead against the ideal, measured in one run on one dev server.

    python -m bench.waves [--targets 50] [--parallel 10] [--seconds 2]

(a) one target: a pipeline of a single rolling-update target whose roll-out takes `--seconds` (the
    Kubernetes, registry and observe activities short-circuited: fakes under their own names);
(b) a wave of `--targets` such targets with `maxParallel: --parallel`.
The ideal for (b) is rounds × (a), rounds = targets / parallel; prints (b) / ideal (medians of three
runs each). Target <= 1.15. With `--seconds 0` it measures pure orchestration instead: ten children at
once cost the dev server more than one does, so that ratio is far above 1 on a small machine.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import math
import tempfile
import time
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from localcluster.devserver import DevServer, free_port
from models.pipeline import PipelineInput
from models.status import Phase, RolloutStatus
from tests.pipeline_helpers import FakeFleet, pipeline, stage
from workers.temporal import ensure_search_attributes
from workflows.registry import ALL_WORKFLOWS


async def run_one(client: Client, queue: str, name: str, targets: int, parallel: int) -> float:
    document = pipeline(name, "registry.local/web:2.0.0", [
        stage("prod", "shop", [f"c{i:03d}" for i in range(targets)], maxParallel=parallel, template="b")])
    began = time.perf_counter()
    handle = await client.start_workflow("Pipeline", PipelineInput(pipeline=document, requested_by="bench"),
                                         id=document.rollout_id, task_queue=queue, result_type=RolloutStatus)
    final = await handle.result()
    took = time.perf_counter() - began
    assert final.phase is Phase.HEALTHY, final.message
    return took


async def main(targets: int, parallel: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = DevServer(db_file=Path(tmp) / "bench.db", port=free_port(), ui_port=None).start()
        try:
            client = await Client.connect(server.address, data_converter=pydantic_data_converter)
            await ensure_search_attributes(client, "default")
            fleet = FakeFleet(seconds=seconds)
            with concurrent.futures.ThreadPoolExecutor(max_workers=4 * parallel) as pool:
                async with Worker(client, task_queue="bench-waves", workflows=ALL_WORKFLOWS,
                                  activities=fleet.activities(), activity_executor=pool,
                                  max_concurrent_activities=4 * parallel, max_concurrent_workflow_tasks=4 * parallel):
                    await run_one(client, "bench-waves", "warm-up", 1, 1)
                    singles = [await run_one(client, "bench-waves", f"one-{i}", 1, 1) for i in range(3)]
                    single = sorted(singles)[1]
                    waves = [await run_one(client, "bench-waves", f"wave-{i}", targets, parallel) for i in range(3)]
                    wave = sorted(waves)[1]
        finally:
            server.stop()
    rounds = math.ceil(targets / parallel)
    ideal = rounds * single
    print(f"one target: {single:.2f}s (median of 3; roll-out {seconds:g}s)")
    print(f"wave of {targets} targets, maxParallel {parallel}: {wave:.2f}s (median of 3); ideal {rounds} rounds x {single:.2f}s = "
          f"{ideal:.2f}s")
    print(f"ratio {wave / ideal:.3f} (target <= 1.15)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=50)
    parser.add_argument("--parallel", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5.0, help="how long a short-circuited roll-out takes")
    args = parser.parse_args()
    asyncio.run(main(args.targets, args.parallel, args.seconds))
