"""What the worker trusts about each updater repository, from its own configuration — never from a Release.

`$DURABLE_ROLLOUTS_TUF_TRUST` names a JSON or YAML file (`rollout release init` writes one per repository):

    repositories:
      s3://updates/desktop-app:                   # bucket and prefix, as Releases name them
        root: /etc/durable-rollouts/desktop-app.root.json   # a root this worker trusts (version 1 or later)
        endpoint: https://s3.eu-west-1.amazonaws.com        # optional; otherwise boto3's default endpoint
    expiry:                                       # optional bounds on every Release's `expiry` (defaults below)
      timestamp: [5m, 7d]
      snapshot: [1h, 30d]
      channel: [1d, 366d]

The publisher reads, edits and re-signs only a repository listed here, through only the endpoint listed
for it (a Release's `endpoint` must be that one or absent: a document never chooses where the worker
sends its S3 signatures), and only after the metadata in the bucket verify from the trusted root
(`repository.S3Repository.load`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError
from temporalio.exceptions import ApplicationError

from activities.settings import mapping_file
from models.durations import Duration
from models.updater import Expiry, Repository

TRUST_VARIABLE = "DURABLE_ROLLOUTS_TUF_TRUST"
DEFAULT_BOUNDS = {"timestamp": (timedelta(minutes=5), timedelta(days=7)),
                  "snapshot": (timedelta(hours=1), timedelta(days=30)),
                  "channel": (timedelta(days=1), timedelta(days=366))}
ROOT_LIMIT = 512 * 1024  # a root metadata file is a few kB


def _refuse(message: str) -> ApplicationError:
    return ApplicationError(message, type="Untrusted", non_retryable=True)


@dataclass(frozen=True)
class Trusted:
    """One repository the worker publishes to."""

    root: bytes  # the trusted root metadata (verified chains start here)
    endpoint: str | None


@dataclass
class Trust:
    repositories: dict[str, Trusted] = field(default_factory=dict)
    bounds: dict[str, tuple[timedelta, timedelta]] = field(default_factory=lambda: dict(DEFAULT_BOUNDS))
    source: str = f"${TRUST_VARIABLE}"

    @classmethod
    def from_env(cls) -> Trust:
        if not os.environ.get(TRUST_VARIABLE):
            return cls()
        return cls.from_mapping(mapping_file(TRUST_VARIABLE), f"${TRUST_VARIABLE} {os.environ[TRUST_VARIABLE]}")

    @classmethod
    def from_file(cls, path: Path) -> Trust:
        import yaml

        return cls.from_mapping(yaml.safe_load(path.read_text()) or {}, str(path))

    @classmethod
    def from_mapping(cls, data: dict[str, Any], source: str) -> Trust:
        repositories, bounds = {}, dict(DEFAULT_BOUNDS)
        entries = data.get("repositories") or {}
        if not isinstance(entries, dict):
            raise _refuse(f"{source}: repositories must map s3://bucket/prefix to {{root, endpoint}}")
        for name, entry in entries.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("root"), str):
                raise _refuse(f"{source}: repositories.{name}.root: the path of a trusted root.json is required")
            endpoint = entry.get("endpoint")
            if endpoint is not None and not (isinstance(endpoint, str) and endpoint.startswith(("https://", "http://"))):
                raise _refuse(f"{source}: repositories.{name}.endpoint: not an http(s) URL")
            try:
                with open(entry["root"], "rb") as file:
                    root = file.read(ROOT_LIMIT + 1)
            except OSError as error:
                raise _refuse(f"{source}: repositories.{name}.root {entry['root']}: {type(error).__name__}") from None
            if len(root) > ROOT_LIMIT:
                raise _refuse(f"{source}: repositories.{name}.root: larger than {ROOT_LIMIT} bytes")
            repositories[str(name).rstrip("/")] = Trusted(root, endpoint)
        given = data.get("expiry") or {}
        for role, pair in (given.items() if isinstance(given, dict) else [("expiry", None)]):
            try:
                low, high = TypeAdapter(tuple[Duration, Duration]).validate_python(pair)
            except ValidationError:
                raise _refuse(f"{source}: expiry.{role}: give [shortest, longest], like [5m, 7d]") from None
            if role not in DEFAULT_BOUNDS or not timedelta(0) < low <= high:
                raise _refuse(f"{source}: expiry.{role}: a role (timestamp, snapshot, channel) and 0 < shortest ≤ longest")
            bounds[role] = (low, high)
        return cls(repositories, bounds, source)

    def of(self, repository: Repository) -> Trusted:
        """The worker's entry for `repository`; a Release may not pick another endpoint for it."""
        entry = self.repositories.get(repository.describe())
        if entry is None:
            raise _refuse(f"{repository.describe()}: this worker does not publish to it (not in {self.source}; "
                          "`rollout release init` writes the entry)")
        if repository.endpoint is not None and repository.endpoint.rstrip("/") != (entry.endpoint or "").rstrip("/"):
            raise _refuse(f"endpoint {repository.endpoint}: the worker's configuration names "
                          f"{entry.endpoint or 'the default S3 endpoint'} for {repository.describe()}")
        return entry

    def check(self, expiry: Expiry) -> None:
        """Each role's validity within the worker's bounds: not 0 s (every device frozen out at once), not a
        year (a frozen mirror unnoticed for a year)."""
        for role, (low, high) in self.bounds.items():
            value = getattr(expiry, role)
            if not low <= value <= high:
                raise _refuse(f"spec.channel.updater.expiry.{role}: {value} is outside the worker's bounds "
                              f"[{low}, {high}] ({self.source})")
