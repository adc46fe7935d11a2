"""The proxy in front of a Compose service: HAProxy, driven through its runtime API (the "stats socket" at
admin level; HAProxy 2.4+ for dynamic servers). Chosen over nginx because weights and server states change
at run time without a reload (a reload forks new workers and drops the old ones' statistics), and a
request of several commands separated by ";" is applied by one session, so a canary's weights and an
abort's switch back are one write. Reference: HAProxy 2.6 management guide, "Unix Socket commands".

The backend's servers are the engine's: one per ready container of the service, named after the container
(`add server`, then `enable server`: a dynamic server is born in maintenance), weighted for the canary's
share (`set server … weight`, 0-256), drained before its container stops (`set server … state drain`,
then its sessions gone, `state maint`, `del server`, which HAProxy allows only in maintenance). A server
of that backend that is not a container of the service stops a rollout before anything changes."""

from __future__ import annotations

import csv
import io
import math
import socket
import time
from typing import Any

from temporalio.exceptions import ApplicationError

from activities.docker import invalid

MAX_WEIGHT = 256


class Haproxy:
    """One HAProxy's runtime API (unix:///path or tcp://host:port, the worker's configuration)."""

    def __init__(self, address: str) -> None:
        self.address = address

    def run(self, *commands: str) -> str:
        """Send `commands` in one request (one session applies them in order); HAProxy's answer."""
        for command in commands:
            if ";" in command or "\n" in command:
                raise invalid(f"haproxy: a command holds a separator: {command!r}")
        if self.address.startswith("unix://"):
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target: Any = self.address.removeprefix("unix://")
        else:
            host, _, port = self.address.removeprefix("tcp://").rpartition(":")
            connection, target = socket.socket(socket.AF_INET, socket.SOCK_STREAM), (host, int(port))
        with connection:
            connection.settimeout(10)
            connection.connect(target)
            connection.sendall(("; ".join(commands) + "\n").encode())
            answer = b""
            while chunk := connection.recv(65536):
                answer += chunk
        return answer.decode(errors="replace")

    def change(self, *commands: str) -> None:
        """Commands that answer nothing (or the known confirmations) when they work: anything else is refused."""
        answer = self.run(*commands)
        said = [line for line in answer.splitlines() if line.strip() and line.strip() not in (
            "New server registered.", "Server deleted.")]
        if said:
            raise invalid(f"haproxy refused {'; '.join(commands)[:200]}: {' '.join(said)[:300]}")

    def servers(self, backend: str) -> dict[str, dict[str, Any]]:
        """The backend's servers: address, port, operational and administrative state, weight."""
        answer = self.run(f"show servers state {backend}")
        if "Can't find backend" in answer or "No such backend" in answer:
            raise invalid(f"haproxy: no backend {backend!r}")
        found = {}
        for line in answer.splitlines():
            fields = line.split()
            if len(fields) > 18 and fields[0].isdigit() and fields[1] == backend:
                found[fields[3]] = {"addr": fields[4], "op_state": int(fields[5]), "admin_state": int(fields[6]),
                                    "weight": int(fields[7]), "port": int(fields[18])}
        return found

    def stats(self, backend: str) -> dict[str, dict[str, str]]:
        """`show stat`'s row for each server of the backend (scur: current sessions, stot, hrsp_5xx …)."""
        text = self.run("show stat").lstrip("# ")
        return {row["svname"]: row for row in csv.DictReader(io.StringIO(text))
                if row.get("pxname") == backend and row.get("svname") not in ("FRONTEND", "BACKEND")}

    # -- what the engine does with the backend ----------------------------------------------------------
    def serve(self, backend: str, name: str, address: str, port: int, weight: int) -> None:
        """The container in the backend at `weight`, enabled; only what differs is sent (a retry finds it there)."""
        known = self.servers(backend).get(name)
        if known is not None and (known["addr"], known["port"]) != (address, port):
            self.unserve(backend, name, 0)
            known = None
        if known is None:
            self.change(f"add server {backend}/{name} {address}:{port} weight {weight}", f"enable server {backend}/{name}")
            return
        commands = [f"set server {backend}/{name} weight {weight}"] if known["weight"] != weight else []
        commands += [f"set server {backend}/{name} state ready"] if known["admin_state"] else []  # maint or drain
        if commands:
            self.change(*commands)

    def unserve(self, backend: str, name: str, drain_seconds: float) -> None:
        """Drain the server (no new sessions), wait until its sessions end (at most `drain_seconds`), delete."""
        if name not in self.servers(backend):
            return
        self.change(f"set server {backend}/{name} state drain")
        deadline = time.monotonic() + drain_seconds
        while time.monotonic() < deadline and int(self.stats(backend).get(name, {}).get("scur") or 0) > 0:
            time.sleep(0.1)
        self.change(f"set server {backend}/{name} state maint", f"shutdown sessions server {backend}/{name}")
        for _ in range(50):  # `del server` waits for the sessions the shutdown is still closing
            answer = self.run(f"del server {backend}/{name}")
            if "Server deleted." in answer or "No such server" in answer:
                return
            time.sleep(0.1)
        raise ApplicationError(f"haproxy: {backend}/{name} still has connections: {answer.strip()[:200]}",
                               type="ProxyBusy")

    def weigh(self, backend: str, weights: dict[str, int]) -> bool:
        """Every server's weight in one request: those that differ (read first, so a retry sends nothing),
        rising ones first (the commands of a request run one after another: never a moment with every weight
        at 0); whether any did. A server that should take traffic and is not in the backend is an error."""
        current = self.servers(backend)
        missing = sorted(name for name, weight in weights.items() if weight and name not in current)
        if missing:
            raise ApplicationError(f"haproxy: {backend} has no server {', '.join(missing)} (reloaded?)",
                                   type="ProxyChanged")
        changes = sorted(((weight - current[name]["weight"] < 0, name, weight) for name, weight in weights.items()
                          if name in current and current[name]["weight"] != weight))
        if changes:
            self.change(*(f"set server {backend}/{name} weight {weight}" for _, name, weight in changes))
        return bool(changes)


def split(percent: int, stable: int, canary: int) -> tuple[int, int, float]:
    """Per-server weights (stable, canary) giving the canary `percent` of requests across `stable` and
    `canary` servers, within HAProxy's 0-256; and the share they really give."""
    if canary == 0 or percent <= 0:
        return 1, 0, 0.0
    if stable == 0 or percent >= 100:
        return 0, 1, 100.0
    ws, wc = (100 - percent) * canary, percent * stable
    divisor = math.gcd(ws, wc)
    ws, wc = ws // divisor, wc // divisor
    if max(ws, wc) > MAX_WEIGHT:
        scale = MAX_WEIGHT / max(ws, wc)
        ws, wc = max(1, round(ws * scale)), max(1, round(wc * scale))
    return ws, wc, round(100 * wc * canary / (wc * canary + ws * stable), 2)
