"""The S3 clients the updater activities use: one boto3 client per endpoint, built once per worker.
Credentials and the default endpoint come from boto3's own chain (`AWS_*` environment variables,
`AWS_ENDPOINT_URL`, config files, instance roles): never from a workflow."""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

from models.flags import FlagObject
from models.updater import Repository


class S3Clients:
    def __init__(self) -> None:
        self._clients: dict[str | None, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, repository: Repository | FlagObject) -> Any:
        """The client for a repository's (or a flag object's) endpoint."""
        with self._lock:
            if repository.endpoint not in self._clients:
                self._clients[repository.endpoint] = boto3.client(
                    "s3", endpoint_url=repository.endpoint,
                    config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=60))
            return self._clients[repository.endpoint]
