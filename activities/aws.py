"""Talking to AWS (the ECS target, the CloudWatch providers): one boto3 client per (service, region),
built once per worker from boto3's own chain (credentials, `AWS_ENDPOINT_URL_<SERVICE>`, config files,
instance roles) — never from a workflow or a document — and one rule for AWS errors.

Permanent (non-retryable, the message names the resource): the request is wrong or the resource is not
there or not ours (4xx validation, not-found, access denied). Everything else — throttling, 5xx, a lost
connection — is retried, first by botocore (standard mode, 3 attempts), then by Temporal. Every activity
reads first and changes only what differs, so a repeat is safe."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from temporalio.exceptions import ApplicationError

_CONFIG = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=30)
_RETRIED = {"ThrottlingException", "Throttling", "RequestLimitExceeded", "ServerException", "ServiceUnavailable",
            "InternalFailure", "InternalError"}
_FORBIDDEN = {"AccessDeniedException", "AccessDenied", "UnauthorizedOperation", "UnrecognizedClientException",
              "InvalidClientTokenId", "ExpiredTokenException"}


class AwsClients:
    """boto3 clients by (service, region), thread-safe, built on first use."""

    def __init__(self, session: Any = None) -> None:
        self._session = session or boto3.session.Session()
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def __call__(self, service: str, region: str) -> Any:
        with self._lock:
            if (service, region) not in self._clients:
                self._clients[(service, region)] = self._session.client(service, region_name=region, config=_CONFIG)
            return self._clients[(service, region)]

    def ecs(self, region: str) -> Any:
        return self("ecs", region)

    def elbv2(self, region: str) -> Any:
        return self("elbv2", region)

    def cloudwatch(self, region: str) -> Any:
        return self("cloudwatch", region)


@contextlib.contextmanager
def aws_errors(what: str, invalid_type: str = "InvalidTarget") -> Iterator[None]:
    """Turn a botocore ClientError into an ApplicationError naming `what` (e.g. "ecs service shop/web");
    a request refused as wrong is `invalid_type` (a metric's: "Invalid")."""
    try:
        yield
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", "") or str(error)
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _RETRIED or status >= 500 or status == 429:
            raise ApplicationError(f"{what}: {code}: {message}", type="AwsUnavailable") from None
        kind = "Forbidden" if code in _FORBIDDEN else "NotFound" if "NotFound" in code else invalid_type
        raise ApplicationError(f"{what}: {code}: {message}", type=kind, non_retryable=True) from None


def invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type="InvalidTarget", non_retryable=True)
