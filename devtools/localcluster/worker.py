"""`python -m localcluster.worker [--task-queue Q] [--metrics-port P]`: `rollout worker` with the test
harness' kill points ($DURABLE_ROLLOUTS_KILL_PLAN, see faults.py) around its activities. The product's
worker never imports them: they are handed to it as interceptors, here."""

from __future__ import annotations

import argparse
import os

from localcluster.faults import from_env
from workers.main import main


def run() -> None:
    parser = argparse.ArgumentParser(prog="localcluster.worker")
    parser.add_argument("--task-queue", default=None)
    parser.add_argument("--metrics-port", type=int, default=None)
    args = parser.parse_args()
    main(args.task_queue, args.metrics_port, os.environ.get("KUBECONFIG"), interceptors=from_env())


if __name__ == "__main__":
    run()
