"""What a device tells the fleet: each install's outcome, health, and crash beacons, as JSON posted to
the telemetry endpoint (`telemetry_url`, e.g. a collector Prometheus scrapes). A report that cannot be
sent waits in `outbox.jsonl` and goes with the next one: an offline device loses none."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rollout_agent.config import AgentConfig, Check
    from rollout_agent.install import Outcome


class Reporter:
    def __init__(self, config: AgentConfig, state_dir: Path) -> None:
        self.config, self.outbox = config, state_dir / "outbox.jsonl"

    def outcome(self, check: Check, outcome: Outcome) -> None:
        self.send({"event": outcome.stage, "ok": outcome.ok, "version": outcome.version,
                   "from": check.installed, "action": check.decision.action, "message": outcome.message,
                   "release": check.state.release if check.state else ""})

    def crash(self, version: str, detail: str = "") -> None:
        self.send({"event": "crash", "ok": False, "version": version, "message": detail})

    def send(self, event: dict[str, Any]) -> None:
        c = self.config
        event = {"device": c.device_id, "channel": c.channel, "platform": c.platform, "at": time.time(), **event}
        if not c.telemetry_url:
            return
        with open(self.outbox, "a") as out:
            out.write(json.dumps(event) + "\n")
        self.flush()

    def pending(self) -> int:
        return len(self.outbox.read_text().splitlines()) if self.outbox.exists() else 0

    def flush(self) -> bool:
        if not self.config.telemetry_url or not self.outbox.exists():
            return True
        events = [json.loads(line) for line in self.outbox.read_text().splitlines() if line.strip()]
        request = urllib.request.Request(self.config.telemetry_url, data=json.dumps(events).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                answer.read()
        except (urllib.error.URLError, OSError):
            return False
        self.outbox.unlink()
        return True
