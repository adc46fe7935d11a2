"""The worker's image (`deploy/Dockerfile`) built and run on a test Docker host (localcluster/dockerhost.py),
with nothing pulled: no image registry is reachable here.

- **Base**: `mmdebstrap` of Debian bookworm with `python3` and `python3-venv` (Debian's Python is 3.11, the
  wheels' ABI), made once by `scripts/setup` (`python -m localcluster.workerimage base`) into the cache,
  keyed by its package list, and `docker import`ed on each host.
- **Dependencies**: the wheelhouse `scripts/setup` keeps (with `setuptools`, which building the two local
  projects needs), served over HTTP on the host's loopback *inside its namespace* for the build's `RUN`
  (`network_mode=host`: the namespace's network) — the Dockerfile's `PIP_OPTIONS` points pip at it, as a
  company would at its private mirror.
- **Context**: the repository itself, filtered by its `.dockerignore` (the Docker SDK applies it).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from localcluster.cluster import cache_dir

REPO = Path(__file__).resolve().parents[2]
SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "ca-certificates", "passwd")  # passwd: the Dockerfile's useradd
BASE_TAG = "durable-rollouts/base:bookworm"
WHEELS_PORT = 18999  # inside the host's namespace, where nothing else listens


def base_tarball() -> Path:
    key = hashlib.sha256(f"{SUITE} {' '.join(PACKAGES)}".encode()).hexdigest()[:12]
    return cache_dir() / "worker-base" / f"{SUITE}-{key}.tar"


def make_base() -> Path:
    """The base's root filesystem as a tarball, once (about 20 s and 220 MB; `mmdebstrap`'s default mirrors for
    bookworm: deb.debian.org with its updates and security suites). The key has no date: delete the cache's
    `worker-base/` for newer packages."""
    path = base_tarball()
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".partial.tar")
    partial.unlink(missing_ok=True)
    subprocess.run(["mmdebstrap", "--quiet", "--format=tar", "--variant=apt", f"--include={','.join(PACKAGES)}",
                    SUITE, str(partial)], check=True, timeout=900)
    partial.rename(path)
    return path


@dataclass
class Built:
    image: str  # the tag
    seconds: float  # the build's wall time (the base's import not counted)
    size: int  # bytes, as `docker images` shows
    log: str


def build_worker_image(host, wheelhouse: Path, tag: str = "durable-rollouts/worker:test") -> Built:
    """deploy/Dockerfile built on `host` from the imported base, pip finding every dependency in `wheelhouse`."""
    base = base_tarball()
    if not base.is_file():
        raise FileNotFoundError(f"no base image at {base}: scripts/setup makes it (mmdebstrap)")
    with open(base, "rb") as tar:
        subprocess.run(["docker", "-H", host.engine, "import", "-", BASE_TAG], stdin=tar, check=True,
                       capture_output=True, timeout=300)
    server = subprocess.Popen(["nsenter", "-t", str(host.pid), "-n", sys.executable, "-m", "http.server", "--bind",
                               "127.0.0.1", "--directory", str(wheelhouse), str(WHEELS_PORT)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    client = host.client()
    client.api.timeout = 900
    lines: list[str] = []
    try:
        host.listening(WHEELS_PORT, server, "the wheelhouse's HTTP server did not start in the host's namespace")
        began = time.monotonic()
        options = f"--no-index --find-links http://127.0.0.1:{WHEELS_PORT}/"
        for chunk in client.api.build(path=str(REPO), dockerfile="deploy/Dockerfile", tag=tag, rm=True, forcerm=True,
                                      buildargs={"BASE": BASE_TAG, "PIP_OPTIONS": options}, network_mode="host",
                                      decode=True):
            lines.append(chunk.get("stream") or chunk.get("status") or "")
            if "error" in chunk:
                raise RuntimeError(f"docker build: {chunk['error']}\n{''.join(lines)[-3000:]}")
        seconds = time.monotonic() - began
        size = client.images.get(tag).attrs["Size"]
    finally:
        server.kill()
        server.wait(10)
        client.close()
    return Built(tag, seconds, size, "".join(lines))


if __name__ == "__main__":
    if sys.argv[1:] != ["base"]:
        sys.exit("usage: python -m localcluster.workerimage base")
    print(make_base())
