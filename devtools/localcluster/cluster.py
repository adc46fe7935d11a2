"""The local Kubernetes: real etcd, kube-apiserver and kube-controller-manager v1.20.2 on loopback,
plus our fake kubelet and traffic simulator. `LocalCluster(root).start()` brings it all up and
writes `root/kubeconfig` (context `local`); `stop()` ends it. The apiserver keeps an audit log of
every write the engine makes to Deployments, Services and traffic-routing objects (`root/audit.log`).
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from localcluster import REPO
from localcluster.devserver import free_port, state_dir, wait_port

KUBERNETES_VERSION = "v1.20.2"
ENGINE_USER = "durable-rollouts"  # the identity our activities use; the audit log is filtered on it
BUILD_SCRIPT = Path(__file__).with_name("build-kubernetes.sh")

AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: RequestResponse
    users: ["%s"]
    verbs: ["create", "update", "patch", "delete"]
    resources:
      - group: "apps"
        resources: ["deployments", "deployments/scale", "statefulsets", "daemonsets"]
      - group: ""
        resources: ["services", "pods"]
      - group: "networking.k8s.io"
        resources: ["ingresses"]
      - group: "networking.istio.io"
        resources: ["virtualservices", "destinationrules"]
      - group: "gateway.networking.k8s.io"
        resources: ["httproutes"]
  - level: Metadata  # a worker running under its own ServiceAccount (deploy/): who wrote what
    userGroups: ["system:serviceaccounts"]
    verbs: ["get", "list", "create", "update", "patch", "delete"]
  - level: None
""" % ENGINE_USER


def cache_dir() -> Path:
    return Path(os.environ.get("DURABLE_ROLLOUTS_CACHE", os.path.expanduser("~/.cache/durable-rollouts")))


def kubernetes_binaries(build: bool = True) -> Path:
    """The directory with kube-apiserver and kube-controller-manager, building them once if needed."""
    bin_dir = cache_dir() / f"kubernetes-{KUBERNETES_VERSION}" / "bin"
    if not (bin_dir / "kube-apiserver").exists() or not (bin_dir / "kube-controller-manager").exists():
        if not build:
            raise FileNotFoundError(f"Kubernetes binaries not built yet: run {BUILD_SCRIPT}")
        subprocess.run(["bash", str(BUILD_SCRIPT), str(cache_dir())], check=True)
    return bin_dir


@dataclass
class LocalCluster:
    root: Path = field(default_factory=lambda: state_dir() / "cluster")
    ready_delay_seconds: float = 1.0
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def audit_log(self) -> Path:
        return self.root / "audit.log"

    @property
    def simulator_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['simulator']}/metrics"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    def kubeconfig_through(self, server: str, path: Path) -> Path:
        """A copy of the engine's kubeconfig that talks to `server` (a fault proxy) instead."""
        config = json.loads(self.kubeconfig.read_text())
        config["clusters"][0]["cluster"]["server"] = server
        path.write_text(json.dumps(config, indent=2))
        os.chmod(path, 0o600)
        return path

    def fault_proxy(self, **faults):
        """A fault proxy in front of the kube-apiserver, serving with the cluster's certificate."""
        from localcluster.faultproxy import FaultProxy

        return FaultProxy(self.server, tls=(self.root / "server.crt", self.root / "server.key"),
                          cafile=self.root / "server.crt", paths="/apis/", **faults).start()

    # ---- lifecycle --------------------------------------------------------------------------------

    def start(self, timeout: float = 90) -> LocalCluster:
        bin_dir = kubernetes_binaries()
        if self.running():
            raise RuntimeError(f"a local cluster already runs from {self.root} (rollout cluster down)")
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "logs").mkdir(exist_ok=True)
        self.ports = {name: free_port() for name in ("etcd", "etcd_peer", "apiserver", "simulator")}
        self._write_credentials()
        self._spawn("etcd", self._etcd_command())
        wait_port(self.ports["etcd"], 30)
        self._spawn("kube-apiserver", self._apiserver_command(bin_dir))
        self._wait_ready(timeout)
        self._spawn("kube-controller-manager", self._controller_manager_command(bin_dir))
        py = [sys.executable, "-m"]
        kubelet_cfg = str(self.root / "kubelet.kubeconfig")
        self._spawn("fake-kubelet", py + ["localcluster.kubelet", "--kubeconfig", kubelet_cfg,
                                          "--ready-delay", str(self.ready_delay_seconds)])
        self._spawn("traffic-simulator", py + ["localcluster.traffic", "--kubeconfig", kubelet_cfg,
                                               "--port", str(self.ports["simulator"])])
        wait_port(self.ports["simulator"], 30)
        self._wait_node(timeout)
        self._install_crds()
        self._save_state()
        return self

    def _install_crds(self) -> None:
        from kubernetes import config

        from localcluster.crds import SHARED, install_router_crds

        if not SHARED.is_dir():
            return  # the routers' CRDs come from ../shared; without it only the replicas router works
        api = config.new_client_from_config(str(self.kubeconfig))
        try:
            install_router_crds(api)
        finally:
            api.close()

    def stop(self) -> None:
        state = self._load_state()
        for pid in reversed(list(state.get("pids", {}).values())):
            _terminate(pid)
        (self.root / "state.json").unlink(missing_ok=True)

    def running(self) -> bool:
        pids = self._load_state().get("pids", {})
        return bool(pids) and all(_alive(pid) for pid in pids.values())

    def load(self) -> LocalCluster:
        """Attach to a cluster started earlier (by another process) from the same root."""
        self.ports = self._load_state().get("ports", {})
        return self

    # ---- pieces -----------------------------------------------------------------------------------

    def _write_credentials(self) -> None:
        r = self.root
        if not (r / "server.crt").exists():
            _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
                     "-keyout", str(r / "server.key"), "-out", str(r / "server.crt"), "-subj", "/CN=localhost",
                     "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.96.0.1,DNS:kubernetes.default.svc")
            _openssl("genrsa", "-out", str(r / "sa.key"), "2048")
            _openssl("rsa", "-in", str(r / "sa.key"), "-pubout", "-out", str(r / "sa.pub"))
        users = {ENGINE_USER: "engine", "kube-controller-manager": "controller-manager", "fake-kubelet": "kubelet"}
        tokens = {user: f"{role}-{os.urandom(12).hex()}" for user, role in users.items()}
        lines = [f'{token},{user},{user},"system:masters"' for user, token in tokens.items()]
        (r / "tokens.csv").write_text("\n".join(lines) + "\n")
        os.chmod(r / "tokens.csv", 0o600)
        (r / "audit-policy.yaml").write_text(AUDIT_POLICY)
        self._write_kubeconfig(r / "kubeconfig", tokens[ENGINE_USER])
        self._write_kubeconfig(r / "controller-manager.kubeconfig", tokens["kube-controller-manager"])
        self._write_kubeconfig(r / "kubelet.kubeconfig", tokens["fake-kubelet"])

    def _write_kubeconfig(self, path: Path, token: str) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "local", "cluster": {"server": self.server,
                                                         "certificate-authority": str(self.root / "server.crt")}}],
            "users": [{"name": "local", "user": {"token": token}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "local"}}],
            "current-context": "local",
        }
        path.write_text(json.dumps(config, indent=2))
        os.chmod(path, 0o600)

    def _etcd_command(self) -> list[str]:
        p = self.ports
        return ["etcd", "--data-dir", str(self.root / "etcd"), "--name", "local",
                "--listen-client-urls", f"http://127.0.0.1:{p['etcd']}",
                "--advertise-client-urls", f"http://127.0.0.1:{p['etcd']}",
                "--listen-peer-urls", f"http://127.0.0.1:{p['etcd_peer']}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{p['etcd_peer']}",
                "--initial-cluster", f"local=http://127.0.0.1:{p['etcd_peer']}",
                "--log-level", "warn", "--logger", "zap"]

    def _apiserver_command(self, bin_dir: Path) -> list[str]:
        r = self.root
        return [str(bin_dir / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
                "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
                f"--secure-port={self.ports['apiserver']}", "--insecure-port=0",
                f"--tls-cert-file={r / 'server.crt'}", f"--tls-private-key-file={r / 'server.key'}",
                f"--cert-dir={r / 'certs'}",
                f"--token-auth-file={r / 'tokens.csv'}", "--authorization-mode=RBAC",
                "--disable-admission-plugins=ServiceAccount",
                f"--service-account-key-file={r / 'sa.pub'}", f"--service-account-signing-key-file={r / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc",
                "--service-cluster-ip-range=10.96.0.0/16",
                f"--audit-log-path={self.audit_log}", f"--audit-policy-file={r / 'audit-policy.yaml'}",
                "--audit-log-mode=blocking",
                # The `kubernetes` Service would list 127.0.0.1, which Endpoints reject: no reconciler.
                "--endpoint-reconciler-type=none", "--v=0"]

    def _controller_manager_command(self, bin_dir: Path) -> list[str]:
        return [str(bin_dir / "kube-controller-manager"),
                f"--kubeconfig={self.root / 'controller-manager.kubeconfig'}",
                "--controllers=deployment,replicaset,statefulset,daemonset,endpoint,endpointslice,garbagecollector,namespace,"
                "persistentvolume-binder",
                "--leader-elect=false", "--port=0", "--secure-port=0", "--use-service-account-credentials=false",
                "--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10", "--v=0"]

    def _spawn(self, name: str, command: list[str]) -> None:
        log = open(self.root / "logs" / f"{name}.log", "ab")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "devtools"), str(REPO)])}
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        log.close()
        state = self._load_state()
        state.setdefault("pids", {})[name] = process.pid
        state["ports"] = self.ports
        (self.root / "state.json").write_text(json.dumps(state))
        time.sleep(0.2)
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited at once; see {self.root / 'logs' / (name + '.log')}")

    def _wait_ready(self, timeout: float) -> None:
        context = ssl.create_default_context(cafile=str(self.root / "server.crt"))
        token = json.loads(self.kubeconfig.read_text())["users"][0]["user"]["token"]
        request = urllib.request.Request(f"{self.server}/readyz", headers={"Authorization": f"Bearer {token}"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(request, context=context, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"kube-apiserver not ready in {timeout}s; see {self.root / 'logs'}")

    def _wait_node(self, timeout: float) -> None:
        from kubernetes import client, config

        api = client.CoreV1Api(config.new_client_from_config(str(self.kubeconfig)))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            nodes = api.list_node().items
            if nodes and any(c.type == "Ready" and c.status == "True" for c in (nodes[0].status.conditions or [])):
                api.api_client.close()
                return
            time.sleep(0.3)
        raise TimeoutError("the fake kubelet did not register a Ready node")

    def _save_state(self) -> None:
        state = self._load_state()
        state["ports"] = self.ports
        (self.root / "state.json").write_text(json.dumps(state))

    def _load_state(self) -> dict:
        try:
            return json.loads((self.root / "state.json").read_text())
        except (OSError, ValueError):
            return {}


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie child of ours counts as gone
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return True


def _terminate(pid: int, grace: float = 10) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
