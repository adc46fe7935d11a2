"""A simulated fleet of devices on one updater channel, for tests, the demo and benchmarks.

Every `tick` the fleet reads the channel once through python-tuf's real client (a reader agent: the
signed rollout state, verified) and then each simulated device decides with rollout-agent's own
eligibility code (`cohort.decide`) what it runs; installs fail and devices crash at configurable
per-version rates. Real agents (rollout-agent, full check/download/verify/install path) report to
the same collector (`POST /report`). Prometheus scrapes `GET /metrics`:

    fleet_devices{version}            devices running each version (simulated + real)
    fleet_crashes_total{version}      crash beacons
    fleet_installs_total{version,outcome}
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from dataclasses import astuple
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from rollout_agent.agent import Agent, AgentConfig, AgentError
from rollout_agent.cohort import decide

from localcluster.updates import UpdaterSetup, device_config


class Fleet:
    def __init__(self, setup: UpdaterSetup, workdir: Path, devices: int = 10_000, version: str = "1.0.0",
                 channel: str = "stable", platform: str = "linux-x86_64", tick: float = 0.25, seed: int = 7,
                 online: float = 1.0) -> None:
        self.random = random.Random(seed)
        self.online = online  # the share of devices that check on each tick
        self.ids = [f"device-{n:05d}" for n in range(devices)]
        self.running = dict.fromkeys(self.ids, version)
        self.crash_rates: dict[str, float] = {}  # per version: probability a device crashes per tick
        self.install_failures: dict[str, float] = {}  # per version: probability an install fails
        self.crashes: Counter[str] = Counter()
        self.installs: Counter[tuple[str, str]] = Counter()
        self.real: dict[str, str] = {}  # real agents' device -> version, from their reports
        self.real_crashes = 0
        self.tick, self.lock = tick, threading.Lock()
        reader = device_config(setup, workdir / "reader", "fleet-reader", channel, platform)
        self.reader = Agent(AgentConfig.load(str(reader)))
        self.last_error = ""
        self.ticks = 0
        self._state_key: tuple | None = None
        self._pending: dict[str, str] = {}  # device -> the version it will install when online
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        self._threads = [threading.Thread(target=self._server.serve_forever, daemon=True),
                         threading.Thread(target=self._run, daemon=True)]

    @property
    def report_url(self) -> str:
        return f"http://{self.address}/report"

    def start(self) -> Fleet:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    # ---- what tests read ------------------------------------------------------------------------------

    def share(self, version: str) -> float:
        """Percent of the simulated devices running `version`."""
        with self.lock:
            return 100 * sum(1 for v in self.running.values() if v == version) / len(self.running)

    def on(self, version: str) -> set[str]:
        with self.lock:
            return {d for d, v in self.running.items() if v == version}

    def wait_ticks(self, count: int = 2, timeout: float = 30) -> None:
        """Until the fleet has acted on the channel `count` more times."""
        target, deadline = self.ticks + count, time.monotonic() + timeout
        while self.ticks < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the fleet did not tick (last error: {self.last_error})")
            time.sleep(0.05)

    # ---- the simulation -----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                check = self.reader.check()
            except AgentError as error:
                self.last_error = str(error)
                continue
            with self.lock:
                if check.state is not None:
                    self._act(check.state, check.previous)
                if self.crash_rates:
                    for version in self.running.values():
                        if self.random.random() < self.crash_rates.get(version, 0.0):
                            self.crashes[version] += 1
                self.ticks += 1

    def _act(self, state, previous: str) -> None:
        """Each device decides with the agent's code; a decision only changes with the channel's state or
        the device's version, so it is computed once per state for everyone, then only the devices that
        have something to install are visited (100,000 devices cost one pass per metadata change)."""
        key = (astuple(state), previous)
        if key != self._state_key:
            self._state_key = key
            self._pending = {}
            for device, version in self.running.items():
                decision = decide(device, version, state, previous)
                if decision.installs:
                    self._pending[device] = decision.version
        installed = []
        for device, version in self._pending.items():
            if self.online < 1 and self.random.random() >= self.online:
                continue
            if self.random.random() < self.install_failures.get(version, 0.0):
                self.installs[(version, "failed")] += 1
                continue
            self.running[device] = version
            self.installs[(version, "ok")] += 1
            installed.append(device)
        for device in installed:
            del self._pending[device]

    def _metrics(self) -> str:
        with self.lock:
            counts = Counter(self.running.values()) + Counter(self.real.values())
            lines = ["# TYPE fleet_devices gauge"]
            lines += [f'fleet_devices{{version="{v}"}} {n}' for v, n in sorted(counts.items())]
            lines.append("# TYPE fleet_crashes_total counter")
            versions = set(counts) | set(self.crashes)
            lines += [f'fleet_crashes_total{{version="{v}"}} {self.crashes[v]}' for v in sorted(versions)]
            lines.append("# TYPE fleet_installs_total counter")
            lines += [f'fleet_installs_total{{version="{v}",outcome="{o}"}} {n}'
                      for (v, o), n in sorted(self.installs.items())]
        return "\n".join(lines) + "\n"

    def _report(self, events: list[dict]) -> None:
        with self.lock:
            for event in events:
                if event.get("event") == "crash":
                    self.crashes[event.get("version", "")] += 1
                    self.real_crashes += 1
                elif event.get("event") == "installed":
                    self.real[event["device"]] = event["version"]
                    self.installs[(event["version"], "ok")] += 1
                else:
                    self.installs[(event.get("version", ""), "failed")] += 1

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fleet = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

            def do_GET(self) -> None:  # noqa: N802
                body = fleet._metrics().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802
                try:
                    events = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                    fleet._report(events if isinstance(events, list) else [events])
                    self.send_response(204)
                except (ValueError, KeyError, TypeError):
                    self.send_response(400)
                self.end_headers()

        return Handler
