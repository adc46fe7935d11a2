"""A real Prometheus (Debian's `prometheus` package) on a free loopback port, scraping the given
targets every second; for tests and the demo. No remote storage, data under `root/data`.

    server = PrometheusServer(root, targets=["127.0.0.1:9100"]).start(); server.url; server.stop()
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

from localcluster.devserver import free_port, stop_process


class PrometheusServer:
    def __init__(self, root: Path, targets: list[str], scrape_interval: str = "1s"):
        self.root, self.targets, self.scrape_interval = Path(root), targets, scrape_interval
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> PrometheusServer:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus not found: it comes from Debian's `prometheus` package (scripts/setup)")
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "prometheus.yml"
        targets = ", ".join(f'"{t}"' for t in self.targets)
        config.write_text(
            f"global:\n  scrape_interval: {self.scrape_interval}\n  evaluation_interval: {self.scrape_interval}\n"
            f"scrape_configs:\n  - job_name: simulator\n    static_configs:\n      - targets: [{targets}]\n"
        )
        log = open(self.root / "prometheus.log", "ab")
        self.process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={self.root / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1d"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not start: {(self.root / 'prometheus.log').read_text()[-2000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, grace=10)
            self.process = None
