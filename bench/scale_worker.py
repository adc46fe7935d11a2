"""A benchmark worker process: the real workflows, the Kubernetes activities short-circuited (bench/
overhead.py's fakes, plus one that waits, heartbeating, for the resume benchmark), the worker settings of
`rollout worker` (workers/options.py, from the environment).

    python -m bench.scale_worker --address HOST:PORT --task-queue Q
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import signal
import time
from datetime import timedelta

from temporalio import activity
from temporalio.worker import Worker

from bench.overhead import abort, prepare, promote, set_weight
from models.kubernetes import SetWeightInput, WeightResult
from workers.heartbeat import heartbeat_options
from workers.options import from_arguments
from workers.temporal import TemporalSettings, connect
from workflows.registry import ALL_WORKFLOWS


@activity.defn(name="set_canary_weight")
def set_weight_slowly(request: SetWeightInput) -> WeightResult:
    """At weight 30 (the resume benchmark's step), wait 60 s without a heartbeat of its own (the worker
    heartbeats for it: workers/heartbeat.py): a worker killed meanwhile leaves the attempt to time out on
    its heartbeat and run again elsewhere."""
    if request.weight == 30 and activity.info().attempt == 1:
        time.sleep(60)
    return set_weight(request)


async def run(address: str, queue: str) -> None:
    options = from_arguments()
    client = await connect(TemporalSettings(address=address, namespace="default", ui=""))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    with concurrent.futures.ThreadPoolExecutor(max_workers=options.activity_threads) as pool:
        async with Worker(client, task_queue=queue, workflows=ALL_WORKFLOWS,
                          activities=[prepare, set_weight_slowly, promote, abort], activity_executor=pool,
                          max_cached_workflows=options.max_cached_workflows,
                          max_concurrent_workflow_tasks=options.max_concurrent_workflow_tasks,
                          max_concurrent_activities=options.max_concurrent_activities,
                          sticky_queue_schedule_to_start_timeout=timedelta(seconds=options.sticky_timeout),
                          graceful_shutdown_timeout=timedelta(seconds=1), **heartbeat_options()):
            print(f"worker ready pid={os.getpid()}", flush=True)
            await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.scale_worker")
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    args = parser.parse_args()
    asyncio.run(run(args.address, args.task_queue))


if __name__ == "__main__":
    main()
