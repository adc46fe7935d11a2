"""`rollout demo --release` (the README's release walkthrough) runs end to end: a release to a
simulated fleet through every phase, its gate and its approval, then a real device updated."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from localcluster.commands import port_open

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_release_demo(tmp_path):
    if port_open(7233):  # the demo uses a server already there; this test wants its own
        pytest.fail("something listens on localhost:7233: the release demo would use it")
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    done = subprocess.run([sys.executable, "-m", "starters.cli", "demo", "--release"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    out = done.stdout
    assert "analysis-successful crash-rate" in out and "approved" in out
    assert "rollout/demo/desktop-app: Healthy" in out
    assert "fleet: 100.0% of the simulated devices on 2.4.0" in out
    assert "exit 0, installed nothing -> 2.4.0" in out
