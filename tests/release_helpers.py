"""Helpers for the staged-release tests: a Release document, a worker with the real channel
activities (moto S3, flagd files), and devices running the real rollout-agent."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rollout_agent.agent import Agent, AgentConfig
from temporalio.client import Client
from temporalio.worker import Worker

from activities.analysis import AnalysisActivities
from activities.targets.flag import FlagActivities
from activities.targets.updater import UpdaterActivities
from activities.targets.updater.signers import Signers
from localcluster.fleet import Fleet
from localcluster.prometheus import PrometheusServer
from localcluster.updates import S3Server, UpdaterSetup, device_config, make_artifact, publish_to_everyone
from models.release import Release, parse_release
from models.updater import ChannelInput, Expiry, PublishInput, ReleaseState, UploadInput
from tests.helpers import scraped
from workflows.refresh import RefreshMetadata
from workflows.release import StagedRelease
from workflows.train import ReleaseTrain


def release_document(name: str, setup: UpdaterSetup | None, artifact: Path | None, version: str,
                     phases: list[dict], channel: str = "stable", promote_from: str | None = None,
                     **spec: Any) -> Release:
    document = {
        "apiVersion": "rollouts.durable.dev/v1alpha1", "kind": "Release",
        "metadata": {"name": name, "environment": "test"},
        "spec": {
            "artifact": {"file": str(artifact), "version": version, "platform": "linux-x86_64"} if artifact
            else {"version": version, "platform": "linux-x86_64"},
            "channel": {"updater": {"repository": setup.repository.model_dump(by_alias=True, exclude_none=True),
                                    "channel": channel, **({"promoteFrom": promote_from} if promote_from else {})}},
            "phases": phases, **spec},
    }
    return parse_release(document)


@contextlib.asynccontextmanager
async def release_worker(client: Client, queue: str, s3: S3Server, setup: UpdaterSetup | None,
                         extra: list | None = None) -> AsyncIterator[UpdaterActivities]:
    updater = setup.activities(s3.client()) if setup else UpdaterActivities(lambda repository: s3.client(),
                                                                             lambda: Signers({}))
    flags = FlagActivities(lambda flag_object: s3.client(), httpx.Client())
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        async with Worker(client, task_queue=queue, workflows=[StagedRelease, RefreshMetadata, ReleaseTrain], activity_executor=pool, activities=[
            updater.upload_artifact, updater.publish_release, updater.read_channel,
            updater.refresh_timestamp, flags.set_flag_share, flags.read_flag_share, *(extra or [])]):
            yield updater


def device(setup: UpdaterSetup, root: Path, device_id: str, channel: str = "stable", telemetry: str = "") -> Agent:
    return Agent(AgentConfig.load(str(device_config(setup, root / device_id, device_id, channel,
                                                    telemetry_url=telemetry))))


def measure_activity(providers: dict) -> Any:
    return AnalysisActivities(providers).measure


@contextlib.contextmanager
def running_fleet(s3: S3Server, setup: UpdaterSetup, workdir: Path, devices: int = 100_000):
    """`devices` on 1.0.0 (published to the whole channel first), scraped by a Prometheus of its own. 100,000 by
    default: the share of a phase is then within ±1 percentage point by a wide margin (its standard deviation
    at 50 % is 0.16 pp; with 10,000 devices it would be 0.5 pp, and ±1 pp would fail one run in twenty)."""
    publish_to_everyone(s3, setup, workdir, "1.0.0")
    fleet = Fleet(setup, workdir / "fleet", devices=devices, version="1.0.0", online=0.5).start()
    prometheus = PrometheusServer(workdir / "prometheus", targets=[fleet.address]).start()
    fleet.prometheus_url = prometheus.url
    scraped(prometheus.url, "fleet_devices")  # Prometheus hands new targets to its scrapers every 5 s
    try:
        yield fleet
    finally:
        prometheus.stop()
        fleet.stop()


@pytest.fixture
def fleet(s3_server, updater_setup, tmp_path):
    with running_fleet(s3_server, updater_setup, tmp_path / "fleet-home") as running:
        yield running


PLATFORM = "linux-x86_64"


class Channel:
    """A publisher of one channel (the real activities, called directly) and its S3 objects."""

    def __init__(self, s3_server, setup, tmp_path):
        self.s3, self.setup, self.tmp = s3_server.client(), setup, tmp_path
        self.activities = setup.activities(self.s3)
        self.previous = None

    def upload(self, version: str, repository: Any = None, **artifact: Any) -> UploadInput:
        return UploadInput(repository=repository or self.setup.repository, version=version, platform=PLATFORM,
                           path=str(make_artifact(self.tmp, version, **artifact)))

    def publish(self, a: Any, basis_points: int = 10_000, expiry: Expiry | None = None) -> None:
        self.activities.publish_release(PublishInput(
            repository=self.setup.repository, channel="stable", release=f"r-{a.version}", artifact=a,
            state=ReleaseState(basis_points=basis_points, salt=f"salt-{a.version}"), previous=self.previous,
            expiry=expiry or Expiry()))
        self.previous = a

    def release(self, version: str, basis_points: int = 10_000, expiry: Expiry | None = None, **artifact):
        a = self.activities.upload_artifact(self.upload(version, **artifact))
        self.publish(a, basis_points, expiry)
        return a

    def read(self) -> Any:
        return self.activities.read_channel(ChannelInput(repository=self.setup.repository, channel="stable",
                                                         platform=PLATFORM))

    def key(self, name: str) -> str:
        return self.setup.repository.key(*name.split("/"))

    def get(self, name: str) -> bytes:
        return self.s3.get_object(Bucket="updates", Key=self.key(name))["Body"].read()

    def put(self, name: str, data: bytes) -> None:
        self.s3.put_object(Bucket="updates", Key=self.key(name), Body=data)

    def versions(self) -> dict[str, int]:
        return self.read().versions
