"""The embedded defaults as a person runs them: `rollout dev` serves Temporal with the rollout search
attributes and takes its server down with it on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from localcluster.devserver import free_port, wait_port

REPO = Path(__file__).resolve().parent.parent


def test_rollout_dev_serves_and_stops_cleanly_on_sigterm(tmp_path):
    port, ui_port = free_port(), free_port()
    dev = subprocess.Popen(
        [sys.executable, "-m", "starters.cli", "dev", "--port", str(port), "--ui-port", str(ui_port),
         "--db-file", str(tmp_path / "t.db")],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "DURABLE_ROLLOUTS_STATE": str(tmp_path)},
    )
    try:
        wait_port(port, 60, dev)
        wait_port(ui_port, 60, dev)
        listed = subprocess.run([sys.executable, "-m", "starters.cli", "setup"], cwd=REPO, capture_output=True,
                                text=True, timeout=60, env={**os.environ, "TEMPORAL_ADDRESS": f"127.0.0.1:{port}"})
        assert listed.returncode == 0 and "all present" in listed.stdout, listed.stdout + listed.stderr
        dev.send_signal(signal.SIGTERM)
        assert dev.wait(30) == 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _open(port):
            time.sleep(0.2)
        assert not _open(port), "the Temporal server went down with `rollout dev`"
    finally:
        dev.kill()


def _open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0
