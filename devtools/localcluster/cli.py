"""The dev tools' commands in `rollout` — `rollout dev`, `rollout cluster up|down|status`, `rollout demo` —
offered through the `durable_rollouts.commands` entry point (devtools/pyproject.toml): the product's CLI
lists what the installed plugins add and never imports the dev tools by name. Nothing heavy is imported
here: every `rollout` command loads this module."""

from __future__ import annotations

import argparse
from pathlib import Path

COMMANDS = ("dev", "cluster", "demo")


def add_parsers(sub) -> None:
    p = sub.add_parser("dev", help="run the embedded Temporal dev server (SQLite in the state dir, Web UI)")
    p.add_argument("--port", type=int, default=7233)
    p.add_argument("--ui-port", type=int, default=8233)
    p.add_argument("--db-file", type=Path, default=None)

    p = sub.add_parser("cluster", help="the local Kubernetes: up, down, status")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--clusters", type=int, default=1, choices=range(1, 10), metavar="N",
                   help="N independent clusters, contexts local-1 … local-N in one kubeconfig")

    p = sub.add_parser("demo", help="set up everything locally and run the example canary (--release: a staged "
                                    "release to a simulated fleet)")
    p.add_argument("--release", action="store_true", help="a staged release of a desktop app instead of a canary")
    p.add_argument("--interactive", action="store_true", help="wait for a human to promote")
    p.add_argument("--keep", action="store_true", help="leave Temporal and the cluster running afterwards")
    p.add_argument("-f", "--file", type=Path, default=None, help="spec to run (default examples/canary.yaml)")


def run(args: argparse.Namespace, load) -> int:
    """`load(path, kinds, command)`: the product CLI's spec loader (one-line errors, its exit codes)."""
    if args.command == "dev":
        from localcluster.commands import run_dev_server

        return run_dev_server(args.port, args.ui_port, args.db_file)
    if args.command == "cluster":
        from localcluster.commands import cluster_command

        return cluster_command(args.action, args.clusters)
    if args.release:
        from localcluster.release_demo import run_release_demo

        return run_release_demo(args.interactive)
    from localcluster.demo import run_demo

    rollout = load(args.file, ("Rollout",), "rollout demo -f") if args.file else None
    return run_demo(rollout, args.interactive, args.keep, args.file)


def default_kubeconfig() -> str | None:
    """The worker's kubeconfig when none is set: the local cluster's while `rollout cluster up` runs it."""
    from localcluster.commands import default_kubeconfig

    return default_kubeconfig()
