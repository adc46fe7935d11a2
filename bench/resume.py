"""How soon a rollout moves on after its worker is SIGKILLed, measured in one run (README, "Benchmark").

    python -m bench.resume [--sticky 5,2] [--rounds 3]

A canary (Kubernetes activities short-circuited; its `setWeight 30` waits 60 s on its first attempt,
the worker heartbeating for it each second) on a fresh dev server:
- paused at `pause: {}`: its worker is SIGKILLed, a new one started, `promote` sent; seconds from the new
  worker's start to the next step's start (the promote's workflow task first waits out the dead
  worker's sticky queue: `--sticky-timeout`);
- mid-activity: in the slow `setWeight 30`, the worker is SIGKILLed and a new one started; seconds from
  its start to the next step (the attempt times out on its heartbeat, 4 s, and runs again).
Target: <= 5 s. Printed per sticky timeout, the median of the rounds, with the ratio to the target.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bench.scale import Workers, rollout_document
from localcluster.devserver import DevServer, free_port
from models.approvals import PromoteRequest
from models.spec import parse_rollout
from models.status import RolloutStatus
from starters.commands import start_workflow
from workers.temporal import TemporalSettings, connect

TARGET = 5.0
STEPS = [{"setWeight": 10}, {"pause": {}}, {"setWeight": 30}, {"setWeight": 100}]


async def at_step(handle, step: int, timeout: float = 120) -> float:
    """Wait until the rollout has started step `step` (0-based); the time it was seen."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        status = await handle.query("status", result_type=RolloutStatus)
        if status.current_step >= step and (step != 1 or status.phase.value == "Paused"):
            return time.perf_counter()
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{handle.id} never reached step {step + 1}")


async def one_round(sticky: float, round_: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        server = DevServer(db_file=Path(tmp) / "resume.db", port=free_port(), ui_port=None).start()
        env = {"ROLLOUT_STICKY_TIMEOUT": str(sticky)}
        pool = Workers(server.address, "bench", 1, env, Path(tmp) / "workers.log")
        try:
            client = await connect(TemporalSettings(address=server.address, namespace="default", ui=""))
            handle = await start_workflow(client, parse_rollout(rollout_document(f"resume-{round_}", STEPS)),
                                          "bench", "bench")
            await at_step(handle, 1)
            pool.processes[0].kill()  # SIGKILL while paused
            pool.processes[0].wait()
            pool.processes = [pool.spawn()]
            ready = time.perf_counter()
            await handle.execute_update("promote", PromoteRequest(by="bench"))
            paused = await at_step(handle, 2) - ready
            await asyncio.sleep(2)  # inside the slow setWeight 30 (the worker heartbeating for it)
            pool.processes[0].kill()
            pool.processes[0].wait()
            pool.processes = [pool.spawn()]
            ready = time.perf_counter()
            mid_activity = await at_step(handle, 3) - ready
        finally:
            pool.stop()
            server.stop()
    return paused, mid_activity


async def main(stickies: list[float], rounds: int) -> None:
    for sticky in stickies:
        results = [await one_round(sticky, r) for r in range(rounds)]
        paused = statistics.median(r[0] for r in results)
        mid = statistics.median(r[1] for r in results)
        print(f"sticky timeout {sticky:g}s: resume paused {paused:.1f}s ({paused / TARGET:.2f} of the {TARGET:g}s "
              f"target), mid-activity {mid:.1f}s ({mid / TARGET:.2f}); rounds: "
              + ", ".join(f"{p:.1f}/{m:.1f}" for p, m in results), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sticky", default="5,2")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main([float(s) for s in args.sticky.split(",")], args.rounds))
