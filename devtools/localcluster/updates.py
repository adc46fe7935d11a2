"""Dev tools for the updater channel: moto's S3 server on loopback, a new TUF repository in it, artifacts
to release, and device configs for rollout-agent. Used by the tests, the demo and `rollout dev`; never
by the product."""

from __future__ import annotations

import io
import json
import logging
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from activities.targets.updater.bootstrap import initialize
from models.updater import Expiry, Repository

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


class S3Server:
    """moto's ThreadedMotoServer on 127.0.0.1 (boto3 talks HTTP to it; devices fetch over plain HTTP)."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.url = ""

    def start(self) -> S3Server:
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self.server.stop()

    def client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.url, **CREDENTIALS)

    def environment(self) -> dict[str, str]:
        """What a worker process needs to reach this server (boto3's own variables)."""
        return {"AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1", "NO_PROXY": "127.0.0.1,localhost"}


@dataclass
class UpdaterSetup:
    repository: Repository
    root: Path  # the root metadata devices embed
    signers: Path  # $DURABLE_ROLLOUTS_TUF_SIGNERS for the worker
    base_url: str  # http://127.0.0.1:port/bucket/prefix
    trust: Path  # $DURABLE_ROLLOUTS_TUF_TRUST for the worker

    @property
    def metadata_url(self) -> str:
        return f"{self.base_url}/metadata/"

    @property
    def targets_url(self) -> str:
        return f"{self.base_url}/targets/"

    def signer_uris(self) -> dict[str, str]:
        return json.loads(self.signers.read_text())

    def environment(self) -> dict[str, str]:
        """What a worker process needs to publish to this repository."""
        return {"DURABLE_ROLLOUTS_TUF_SIGNERS": str(self.signers), "DURABLE_ROLLOUTS_TUF_TRUST": str(self.trust)}

    def activities(self, s3: Any, uris: dict[str, str] | None = None) -> Any:
        """The real updater activities for an in-process worker (or called directly), with this repository's
        signers (`uris`: a subset, to test a worker that lacks keys) and trust."""
        from activities.targets.updater import UpdaterActivities
        from activities.targets.updater.signers import Signers
        from activities.targets.updater.trust import Trust

        uris = self.signer_uris() if uris is None else uris
        return UpdaterActivities(lambda repository: s3, lambda: Signers(uris), lambda: Trust.from_file(self.trust))


def new_repository(server: S3Server, bucket: str, prefix: str, workdir: Path, thresholds: dict[str, int] | None = None,
                   expiry: Expiry | None = None) -> UpdaterSetup:
    s3 = server.client()
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        s3.create_bucket(Bucket=bucket)
    repository = Repository(bucket=bucket, prefix=prefix, endpoint=server.url)
    made = initialize(s3, repository, workdir / "keys", thresholds, expiry, public_read=True, endpoint=server.url)
    root = workdir / "root.json"
    root.write_bytes(made["root"])
    trust = Path(made["trust"])  # tests and the demo renew metadata every few seconds: bounds from 1 s
    trust.write_text(json.dumps(json.loads(trust.read_text()) | {"expiry": {
        "timestamp": ["1s", "30d"], "snapshot": ["1s", "90d"], "channel": ["1s", "366d"]}}, indent=2))
    return UpdaterSetup(repository, root, Path(made["signers"]), f"{server.url}/{bucket}/{prefix}", trust)


def make_artifact(directory: Path, version: str, healthy: bool = True, padding: int = 0, broken: bool = False) -> Path:
    """An app release: `bin/health` (exits 0, or 1 when not `healthy`), `VERSION`, and `padding` bytes
    of data. `broken`: a truncated archive (signed correctly, but it does not unpack)."""
    path = directory / f"app-{version}.tar.gz"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        def add(name: str, data: bytes, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            archive.addfile(info, io.BytesIO(data))

        add("bin/health", f"#!/bin/sh\necho app {version}\nexit {0 if healthy else 1}\n".encode(), 0o755)
        add("VERSION", f"{version}\n".encode())
        if padding:
            add("data.bin", os.urandom(padding))
    data = buffer.getvalue()
    path.write_bytes(data[: len(data) // 2] if broken else data)
    return path


def device_config(setup: UpdaterSetup, directory: Path, device_id: str, channel: str = "stable",
                  platform: str = "linux-x86_64", telemetry_url: str = "", health_timeout: float = 10) -> Path:
    config = {"metadata_url": setup.metadata_url, "targets_url": setup.targets_url, "channel": channel,
              "platform": platform, "device_id": device_id, "install_dir": str(directory / "app"),
              "state_dir": str(directory / "state"), "root": str(setup.root), "health": ["sh", "current/bin/health"],
              "health_timeout": health_timeout, "telemetry_url": telemetry_url}
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "agent.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def publish_to_everyone(server: S3Server, setup: UpdaterSetup, workdir: Path, version: str,
                        channel: str = "stable", platform: str = "linux-x86_64") -> None:
    """What a channel runs before a test or the demo starts: `version` on every device, published with the
    real activities (called directly, no workflow)."""
    from models.updater import PublishInput, ReleaseState, UploadInput

    updater = setup.activities(server.client())
    workdir.mkdir(parents=True, exist_ok=True)
    artifact = updater.upload_artifact(UploadInput(repository=setup.repository, version=version, platform=platform,
                                                   path=str(make_artifact(workdir, version))))
    updater.publish_release(PublishInput(repository=setup.repository, channel=channel, release=f"before-{version}",
                                         artifact=artifact, state=ReleaseState(basis_points=10_000, salt="before")))
