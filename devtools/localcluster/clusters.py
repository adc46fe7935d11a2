"""Several independent local clusters: each its own etcd, kube-apiserver, controller-manager, fake
kubelet and traffic simulator (`LocalCluster`), the built binaries shared; one kubeconfig with the
contexts `local-1 … local-N` for the worker of a pipeline across them.

    fleet = LocalClusters(root, 3).start()      # root/cluster-1 … root/cluster-3, root/kubeconfig
    fleet.kubeconfig, fleet.context(0) == "local-1", fleet.clusters[0].audit_log

`LocalClusters.of([...])` joins clusters already running (the test session's own cluster as local-1).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from localcluster.cluster import LocalCluster


def merged_kubeconfig(clusters: list[LocalCluster], names: list[str], path: Path) -> Path:
    """One kubeconfig naming each cluster's API server, CA and engine token under its context name."""
    config = {"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": [],
              "current-context": names[0]}
    for cluster, name in zip(clusters, names, strict=True):
        own = json.loads(cluster.kubeconfig.read_text())
        config["clusters"].append({"name": name, "cluster": own["clusters"][0]["cluster"]})
        config["users"].append({"name": name, "user": own["users"][0]["user"]})
        config["contexts"].append({"name": name, "context": {"cluster": name, "user": name}})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2))
    os.chmod(path, 0o600)
    return path


@dataclass
class LocalClusters:
    root: Path
    count: int = 3
    ready_delay_seconds: float = 1.0
    clusters: list[LocalCluster] = field(default_factory=list)
    owned: list[LocalCluster] = field(default_factory=list)  # the ones this object started (and stops)

    @classmethod
    def of(cls, root: Path, existing: list[LocalCluster], more: int, ready_delay_seconds: float = 1.0) -> LocalClusters:
        fleet = cls(root=root, count=len(existing) + more, ready_delay_seconds=ready_delay_seconds)
        fleet.clusters = list(existing)
        return fleet

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    def context(self, index: int) -> str:
        return f"local-{index + 1}"

    @property
    def contexts(self) -> list[str]:
        return [self.context(i) for i in range(len(self.clusters))]

    def start(self) -> LocalClusters:
        try:
            while len(self.clusters) < self.count:
                cluster = LocalCluster(root=self.root / f"cluster-{len(self.clusters) + 1}",
                                       ready_delay_seconds=self.ready_delay_seconds)
                cluster.start()
                self.clusters.append(cluster)
                self.owned.append(cluster)
        except BaseException:
            self.stop()
            raise
        merged_kubeconfig(self.clusters, self.contexts, self.kubeconfig)
        return self

    def load(self) -> LocalClusters:
        """Attach to clusters started earlier from the same root (`rollout cluster up --clusters N`)."""
        self.clusters = [LocalCluster(root=self.root / f"cluster-{i + 1}").load() for i in range(self.count)]
        self.owned = list(self.clusters)
        return self

    def running(self) -> bool:
        return all(LocalCluster(root=self.root / f"cluster-{i + 1}").running() for i in range(self.count))

    def stop(self) -> None:
        for cluster in reversed(self.owned):
            cluster.stop()
        self.owned = []
