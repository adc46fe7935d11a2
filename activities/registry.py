"""Pinning a pipeline's bundle: each image's tag resolved to its manifest digest through the registry's
OCI distribution API (`HEAD /v2/<name>/manifests/<tag>`, `Docker-Content-Digest`), once, at the start.

Registries are reached over HTTPS, but for those listed in `$DURABLE_ROLLOUTS_INSECURE_REGISTRIES`
(comma-separated `host:port`, as Docker's `insecure-registries`). A `401` with a Bearer challenge is
answered as the distribution spec's token flow says (anonymous, or with the credentials of
`$DOCKER_CONFIG/config.json` / `~/.docker/config.json` for that host, read here, never passed in).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from pathlib import Path

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from models.pipeline import BundleInput, ResolvedBundle

MANIFESTS = ", ".join([
    "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.docker.distribution.manifest.v2+json",
])
DOCKER_HUB = "registry-1.docker.io"


def split_reference(image: str) -> tuple[str, str, str, str]:
    """(registry host, repository path, tag, digest) of an image reference."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = ""
    if ":" in last:
        name, _, tag = name.rpartition(":")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest, tag, digest
    path = name if "/" in name else f"library/{name}"
    return DOCKER_HUB, path, tag, digest


class RegistryActivities:
    def __init__(self, http: httpx.Client | None = None):
        self.http = http or httpx.Client(timeout=20, follow_redirects=True)

    @activity.defn(name="resolve_bundle")
    def resolve_bundle(self, request: BundleInput) -> ResolvedBundle:
        pinned = {}
        for name, image in request.images.items():
            activity.heartbeat(name)
            pinned[name] = self.pin(image)
        return ResolvedBundle(images=pinned)

    def pin(self, image: str) -> str:
        """`repository:tag@sha256:…` for `image` (an image already naming a digest is kept as it is)."""
        host, path, tag, digest = split_reference(image)
        if digest:
            return image
        insecure = {h.strip() for h in os.environ.get("DURABLE_ROLLOUTS_INSECURE_REGISTRIES", "").split(",") if h.strip()}
        url = f"{'http' if host in insecure else 'https'}://{host}/v2/{path}/manifests/{tag}"
        response = self._request("HEAD", url, host, path)
        if response.status_code == 404:
            raise ApplicationError(f"bundle image {image}: no tag {tag!r} in {host}/{path}", type="NotFound",
                                   non_retryable=True)
        if response.status_code in (401, 403):
            raise ApplicationError(f"bundle image {image}: {host} refused access ({response.status_code})",
                                   type="Invalid", non_retryable=True)
        if response.status_code >= 400:
            raise ApplicationError(f"bundle image {image}: {host} answered {response.status_code}", type="Unavailable")
        found = response.headers.get("Docker-Content-Digest", "")
        if not re.fullmatch(r"sha256:[a-f0-9]{64}", found):  # not every registry says: hash the manifest itself
            body = self._request("GET", url, host, path)
            found = "sha256:" + hashlib.sha256(body.content).hexdigest()
        return f"{image}@{found}"

    def _request(self, method: str, url: str, host: str, path: str) -> httpx.Response:
        headers = {"Accept": MANIFESTS}
        try:
            response = self.http.request(method, url, headers=headers)
            challenge = response.headers.get("WWW-Authenticate", "")
            if response.status_code == 401 and challenge.lower().startswith("bearer "):
                headers["Authorization"] = f"Bearer {self._token(challenge, host, path)}"
                response = self.http.request(method, url, headers=headers)
        except httpx.HTTPError as error:
            raise ApplicationError(f"registry {host}: {type(error).__name__}: {error}", type="Unavailable") from None
        return response

    def _token(self, challenge: str, host: str, path: str) -> str:
        fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        params = {"service": fields.get("service", ""), "scope": fields.get("scope", f"repository:{path}:pull")}
        auth = _credentials(host)
        response = self.http.get(fields.get("realm", ""), params=params, auth=auth)
        if response.status_code != 200:
            raise ApplicationError(f"registry {host}: token endpoint answered {response.status_code}", type="Invalid",
                                   non_retryable=True)
        answer = response.json()
        return answer.get("token") or answer.get("access_token", "")


def _credentials(host: str) -> tuple[str, str] | None:
    config = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "config.json"
    try:
        auths = json.loads(config.read_text()).get("auths", {})
    except (OSError, ValueError):
        return None
    entry = auths.get(host) or auths.get(f"https://{host}") or {}
    if "auth" not in entry:
        return None
    user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
    return user, password
