"""What a device is configured with (its JSON config file), what a check found, and the agent's errors:
shared by the agent and its reporter, which import nothing of each other's."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rollout_agent.cohort import Decision, RolloutState


class AgentError(Exception):
    exit_code = 1


class ConfigError(AgentError):
    exit_code = 2



@dataclass
class AgentConfig:
    metadata_url: str
    targets_url: str
    channel: str
    platform: str
    device_id: str
    install_dir: str
    state_dir: str
    root: str  # the channel's root metadata, shipped with the device (the trust anchor)
    health: list[str] = field(default_factory=list)
    health_timeout: float = 60.0
    telemetry_url: str = ""
    max_download_seconds: float = 3600.0  # a whole artifact download, resumed next time when cut
    max_unpacked_bytes: int = 8 * 1024**3
    max_members: int = 100_000

    @classmethod
    def load(cls, path: str) -> AgentConfig:
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            raise ConfigError(f"config {path}: {error}") from None
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"config {path}: unknown field {unknown[0]!r}")
        missing = [k for k in ("metadata_url", "targets_url", "channel", "platform", "device_id", "install_dir",
                               "state_dir", "root") if not raw.get(k)]
        if missing:
            raise ConfigError(f"config {path}: {missing[0]} is required")
        return cls(**raw)


@dataclass
class Check:
    installed: str
    decision: Decision
    state: RolloutState | None
    previous: str = ""

    def as_dict(self) -> dict:
        return {"installed": self.installed, "action": self.decision.action, "version": self.decision.version,
                "why": self.decision.why, "release": asdict(self.state) if self.state else None,
                "previous": self.previous}
