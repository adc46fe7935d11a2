"""The settings of `rollout worker` that matter at scale, each a flag and an environment variable (the
flag wins), with the defaults the benchmarks in bench/ chose (README, "Running many rollouts").

| flag | variable | default | what |
|---|---|---|---|
| `--targets` | `ROLLOUT_WORKER_TARGETS` | all | target families served: kubernetes, updater, stores (one task queue each) |
| `--max-cached-workflows` | `ROLLOUT_MAX_CACHED_WORKFLOWS` | 1000 | running workflows kept in memory per family queue; an evicted one is replayed from its history when it next has work |
| `--max-concurrent-workflow-tasks` | `ROLLOUT_MAX_CONCURRENT_WORKFLOW_TASKS` | 100 | workflow tasks run at once |
| `--max-concurrent-activities` | `ROLLOUT_MAX_CONCURRENT_ACTIVITIES` | 32 | activities run at once (never more than the threads) |
| `--activity-threads` | `ROLLOUT_ACTIVITY_THREADS` | 32 | the thread pool the synchronous activities (Kubernetes, S3, stores) run in |
| `--sticky-timeout` | `ROLLOUT_STICKY_TIMEOUT` | 2 | seconds a workflow task waits for the worker that has the workflow cached before any worker takes it (a dead worker's rollouts move on after this) |
| `--graceful-shutdown` | `ROLLOUT_GRACEFUL_SHUTDOWN` | 10 | seconds SIGTERM lets running activities finish; then they are cancelled and retried elsewhere at once |
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

from models.names import FAMILIES


@dataclass(frozen=True)
class WorkerOptions:
    targets: tuple[str, ...] = FAMILIES
    max_cached_workflows: int = 1000
    max_concurrent_workflow_tasks: int = 100
    max_concurrent_activities: int = 32
    activity_threads: int = 32
    sticky_timeout: float = 2.0
    graceful_shutdown: float = 10.0


DEFAULTS = WorkerOptions()
NUMBERS = {"max_cached_workflows": int, "max_concurrent_workflow_tasks": int, "max_concurrent_activities": int,
           "activity_threads": int, "sticky_timeout": float, "graceful_shutdown": float}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--targets", default=None, metavar="FAMILIES",
                        help=f"comma-separated target families to serve ({', '.join(FAMILIES)}; default: all)")
    for name, kind in NUMBERS.items():
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=None, metavar="N",
                            help=f"default {getattr(DEFAULTS, name)} (${_variable(name)})")


def _variable(name: str) -> str:
    return "ROLLOUT_" + {"targets": "WORKER_TARGETS"}.get(name, name.upper())


def from_arguments(args: argparse.Namespace | None = None) -> WorkerOptions:
    """The options from the flags, else the environment, else the defaults; a bad value raises
    ValueError naming the flag."""
    values: dict = {}
    for name in ("targets", *NUMBERS):
        given = getattr(args, name, None) if args is not None else None
        text = given if given is not None else os.environ.get(_variable(name))
        if text is None:
            continue
        flag = f"--{name.replace('_', '-')}"
        if name == "targets":
            families = tuple(dict.fromkeys(t.strip() for t in str(text).split(",") if t.strip()))
            unknown = [f for f in families if f not in (*FAMILIES, "all")]
            if unknown or not families:
                raise ValueError(f"{flag}: {text!r} (target families: {', '.join(FAMILIES)}, or all)")
            values[name] = FAMILIES if "all" in families else families
            continue
        try:
            number = NUMBERS[name](text)
        except ValueError:
            raise ValueError(f"{flag}: {text!r} is not a number") from None
        if number <= 0:
            raise ValueError(f"{flag}: must be more than 0, got {text}")
        values[name] = number
    options = WorkerOptions(**values)
    if options.max_concurrent_activities > options.activity_threads:
        raise ValueError(f"--max-concurrent-activities: {options.max_concurrent_activities} is more than the "
                         f"{options.activity_threads} activity threads (--activity-threads)")
    return options
