"""A real OCI registry on loopback: Debian's `docker-registry` (distribution v2) with its own storage
directory, and pushes of small images over the distribution API itself (a config blob, one layer, an
OCI image manifest), so a test has tags whose digests the registry — not the test — computes.

    registry = LocalRegistry(root).start()
    registry.push("shop/web", "2.0.0")          # -> "sha256:…" (the registry's Docker-Content-Digest)
    registry.image("shop/web", "2.0.0")         # -> "127.0.0.1:PORT/shop/web:2.0.0"
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from localcluster.devserver import free_port, stop_process, wait_port

BINARY = "docker-registry"
CONFIG = """version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: %s}
  delete: {enabled: true}
http:
  addr: 127.0.0.1:%d
"""
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass
class LocalRegistry:
    root: Path
    port: int = 0
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def image(self, repository: str, tag: str) -> str:
        return f"{self.host}/{repository}:{tag}"

    def start(self) -> LocalRegistry:
        if shutil.which(BINARY) is None:
            raise FileNotFoundError(f"{BINARY} is not installed (scripts/setup installs Debian's docker-registry)")
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        config = self.root / "config.yml"
        config.write_text(CONFIG % (self.root / "storage", self.port))
        log = open(self.root / "registry.log", "ab")
        self.process = subprocess.Popen([BINARY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        log.close()
        wait_port(self.port, 30)
        deadline = time.monotonic() + 30
        while httpx.get(f"{self.url}/v2/", timeout=5).status_code != 200:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{BINARY} did not answer /v2/; see {self.root / 'registry.log'}")
            time.sleep(0.2)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, grace=10)
            self.process = None

    def _blob(self, http: httpx.Client, repository: str, data: bytes) -> dict:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        started = http.post(f"{self.url}/v2/{repository}/blobs/uploads/")
        started.raise_for_status()
        location = started.headers["Location"]
        location = location if location.startswith("http") else self.url + location
        joiner = "&" if "?" in location else "?"  # the Location keeps the upload's state in its query
        done = http.put(f"{location}{joiner}digest={digest}", content=data,
                        headers={"Content-Type": "application/octet-stream"})
        done.raise_for_status()
        return {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": len(data)}

    def push(self, repository: str, tag: str) -> str:
        """Push a small image as `repository:tag`; returns the manifest digest the registry reports."""
        with httpx.Client(timeout=10) as http:
            config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"tag": tag}},
                                 "rootfs": {"type": "layers", "diff_ids": []}}).encode()
            layer = self._blob(http, repository, f"{repository}:{tag} {time.time_ns()}".encode())
            config_blob = self._blob(http, repository, config)
            config_blob["mediaType"] = "application/vnd.oci.image.config.v1+json"
            manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_blob, "layers": [layer]}
            put = http.put(f"{self.url}/v2/{repository}/manifests/{tag}", content=json.dumps(manifest).encode(),
                           headers={"Content-Type": OCI_MANIFEST})
            put.raise_for_status()
            return put.headers["Docker-Content-Digest"]
