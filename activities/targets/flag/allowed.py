"""Which flag stores a Release may name, from the worker's configuration: a document never chooses which
local file the worker rewrites, nor where it sends the Unleash admin token or its S3 signatures.

`$DURABLE_ROLLOUTS_FLAG_STORES` names a YAML file:

    files: [/srv/flags]                      # directories a flags file may be in (links resolved first)
    s3Buckets: [flags-prod, "flags-eu-*"]    # buckets a flags object may be in (shell-style patterns)
    s3Endpoints: [https://minio.internal]    # S3 endpoints besides the worker's default one
    unleash: [https://unleash.example/api]   # the Unleash servers (and paths) that may receive the admin token

URLs are compared by origin (scheme, host, port; an entry without a port allows any port of its host)
and path (the entry's path is a prefix at a `/` boundary). Unset (or a kind left out): files, S3 objects
and Unleash are refused (S3 endpoints: only the default). ConfigMap stores go through the worker's own
kubeconfig contexts and need no entry here.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from urllib.parse import urlsplit

from temporalio.exceptions import ApplicationError

from activities.settings import mapping_file
from models.flags import FlagChannel

STORES_VARIABLE = "DURABLE_ROLLOUTS_FLAG_STORES"


def _refuse(field: str, value: str, what: str) -> ApplicationError:
    return ApplicationError(f"channel.flag.{field} {value}: not {what} this worker's ${STORES_VARIABLE} allows",
                            type="Invalid", non_retryable=True)


def _listed(config: dict, name: str) -> list[str]:
    value = config.get(name) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApplicationError(f"${STORES_VARIABLE}: {name} must be a list of strings", type="Invalid",
                               non_retryable=True)
    return value


def _same_origin(url: str, entry: str) -> bool:
    a, b = urlsplit(url), urlsplit(entry)
    if any(segment.lower() in (".", "..", "%2e", "%2e%2e", ".%2e", "%2e.") for segment in a.path.split("/")):
        return False  # a dot segment would leave the allowed path once the client normalises it
    try:
        ports = (a.port, b.port)
    except ValueError:
        return False
    prefix = b.path.rstrip("/")
    under = a.path == prefix or a.path.startswith(prefix + "/")
    return (a.scheme, a.hostname) == (b.scheme, b.hostname) and (ports[1] is None or ports[0] == ports[1]) and under


def check(channel: FlagChannel) -> None:
    """Refuse (non-retryable, naming the field) a store the worker's configuration does not allow."""
    config = mapping_file(STORES_VARIABLE)
    if channel.file is not None:
        real = Path(os.path.realpath(channel.file))
        if not any(real.is_relative_to(os.path.realpath(d)) for d in _listed(config, "files")):
            raise _refuse("file", channel.file, "in a directory")
    if channel.s3 is not None and not any(fnmatch.fnmatchcase(channel.s3.bucket, b) for b in _listed(config, "s3Buckets")):
        raise _refuse("s3.bucket", channel.s3.bucket, "a bucket")
    endpoint = channel.s3.endpoint if channel.s3 is not None else None
    if endpoint is not None and not any(_same_origin(endpoint, e) for e in _listed(config, "s3Endpoints")):
        raise _refuse("s3.endpoint", endpoint, "an S3 endpoint")
    unleash = channel.unleash.url if channel.unleash is not None else None
    if unleash is not None and not any(_same_origin(unleash, e) for e in _listed(config, "unleash")):
        raise _refuse("unleash.url", unleash, "an Unleash server")
