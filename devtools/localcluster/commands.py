"""The embedded defaults: `rollout dev` (Temporal dev server) and `rollout cluster up|down|status`."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

from localcluster.devserver import DevServer, state_dir
from starters.exitcodes import ExitCode, UserError


def local_cluster():
    from localcluster.cluster import LocalCluster

    return LocalCluster(root=state_dir() / "cluster")


def default_kubeconfig() -> str | None:
    """The local cluster's kubeconfig when it runs, else None (the client's default)."""
    cluster = local_cluster()
    return str(cluster.kubeconfig) if cluster.running() else None


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def run_dev_server(port: int, ui_port: int, db_file: Path | None) -> int:
    if port_open(port):
        raise UserError(f"port {port} is in use: is a Temporal server already running there?", ExitCode.CONFLICT)
    server = DevServer(db_file=db_file or state_dir() / "temporal.db", port=port, ui_port=ui_port)
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # delivered to sigwait below, not fatal
    server.start()
    print(f"Temporal dev server on {server.address} (SQLite {server.db_file}); Web UI {server.ui_url}")
    print("Ctrl-C stops it; rollouts survive a restart.", flush=True)
    try:
        signal.sigwait(stop_signals)
    finally:
        server.stop()
    return ExitCode.OK


def clusters_command(action: str, count: int) -> int:
    """`rollout cluster up|down|status --clusters N`: N independent clusters, contexts local-1 … local-N."""
    from localcluster.clusters import LocalClusters

    fleet = LocalClusters(root=state_dir() / "clusters", count=count)
    if action == "up":
        if fleet.running():
            print(f"already running; export KUBECONFIG={fleet.kubeconfig}")
            return ExitCode.OK
        fleet.start()
        for context, cluster in zip(fleet.contexts, fleet.clusters, strict=True):
            print(f"{context}: Kubernetes v1.20.2 at {cluster.server}; simulator {cluster.simulator_url}")
        print(f"export KUBECONFIG={fleet.kubeconfig}")
    elif action == "down":
        fleet.load().stop()
        print(f"{count} local clusters stopped")
    else:
        if not fleet.running():
            print(f"the {count} local clusters are not running (rollout cluster up --clusters {count})")
            return ExitCode.UNAVAILABLE
        fleet.load()
        print(f"running: {', '.join(fleet.contexts)}; KUBECONFIG={fleet.kubeconfig}")
    return ExitCode.OK


def cluster_command(action: str, count: int = 1) -> int:
    if count > 1:
        return clusters_command(action, count)
    cluster = local_cluster()
    if action == "up":
        if cluster.running():
            print(f"already running; export KUBECONFIG={cluster.kubeconfig}")
            return ExitCode.OK
        cluster.start()
        print(f"local Kubernetes v1.20.2 at {cluster.server}")
        print(f"traffic simulator metrics at {cluster.simulator_url}")
        print(f"export KUBECONFIG={cluster.kubeconfig}")
    elif action == "down":
        cluster.stop()
        print("local cluster stopped")
    else:
        if not cluster.running():
            print("local cluster is not running (rollout cluster up)")
            return ExitCode.UNAVAILABLE
        cluster.load()
        print(f"running: {cluster.server}; KUBECONFIG={cluster.kubeconfig}; simulator {cluster.simulator_url}")
    return ExitCode.OK
