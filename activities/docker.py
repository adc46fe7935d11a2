"""Talking to Docker hosts (the composeHost target): the worker's own list of hosts, one Docker SDK client
per host built on first use, and one rule for the Engine API's errors.

The list is the worker's configuration, never a document's: `ROLLOUT_DOCKER_HOSTS` names a YAML file

    hosts:
      web-1: {engine: "unix:///var/run/docker.sock", projects: [shop]}
      web-2: {engine: "tcp://10.0.4.12:2376", tls: {ca: /etc/rollout/docker/ca.pem,
                                                     cert: /etc/rollout/docker/cert.pem,
                                                     key: /etc/rollout/docker/key.pem}, projects: ["*"]}
      web-3: {engine: "ssh://deploy@web-3", haproxy: "tcp://10.0.4.13:9999", projects: [shop],
              backends: [shop_web, shop_web_preview], networks: [edge]}

`unix://` is a local socket; `tcp://` needs `tls` (mutual TLS: the engine's `--tlsverify`; an engine on
plain TCP is root on its host for anyone who reaches the port, so it is refused); `ssh://` runs the
system's `ssh` as the worker's user (its keys, known_hosts and ~/.ssh/config, where BatchMode,
StrictHostKeyChecking, ConnectTimeout and ServerAliveInterval belong: the SDK passes ssh no options). `haproxy` is
the runtime API of the proxy in front of the host's services (a document's `proxy` names only its
backend): `unix://` (HAProxy's `stats socket … level admin`) or `tcp://` (the runtime API has no
authentication: a private address only the worker reaches). `projects` (required), `backends` (required
with `haproxy`) and `networks` say what documents may touch there (activities/targets/compose/allowed.py).

Permanent (non-retryable, naming the host): a host the worker does not know, a request the engine refuses
as wrong (4xx other than a conflict). Everything else — a lost connection, a 5xx, a conflict with a
concurrent change — is retried by Temporal; every activity reads the containers first and does only what
is missing, so a repeat is safe."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from temporalio.exceptions import ApplicationError

HOSTS_ENV = "ROLLOUT_DOCKER_HOSTS"


def invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type="InvalidTarget", non_retryable=True)


class DockerHosts:
    """Docker SDK clients by host name, from the worker's hosts file (read once, when first asked)."""

    def __init__(self, path: str | None = None) -> None:
        self._path = path if path is not None else os.environ.get(HOSTS_ENV, "")
        self._hosts: dict[str, dict[str, Any]] | None = None
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._host_locks: dict[str, threading.Lock] = {}  # a client is made under its host's lock alone

    def hosts(self) -> dict[str, dict[str, Any]]:
        if self._hosts is None:
            if not self._path:
                raise invalid(f"this worker has no Docker hosts: set {HOSTS_ENV} to its hosts file")
            try:
                loaded = yaml.safe_load(Path(self._path).read_text()) or {}
            except (OSError, yaml.YAMLError) as error:
                raise invalid(f"{HOSTS_ENV}: {self._path}: {error}") from None
            hosts = loaded.get("hosts") if isinstance(loaded, dict) else None
            if not isinstance(hosts, dict):
                raise invalid(f"{HOSTS_ENV}: {self._path}: no `hosts:` mapping")
            for name, host in hosts.items():
                problem = _host_problem(host)
                if problem:
                    raise invalid(f"{HOSTS_ENV}: hosts.{name}.{problem}")
            self._hosts = hosts
        return self._hosts

    def haproxy(self, host: str) -> Any:
        """The runtime API of the host's proxy."""
        from activities.targets.compose.haproxy import Haproxy

        self.client(host)  # a host the worker knows
        address = self.hosts()[host].get("haproxy")
        if not address:
            raise invalid(f"Docker host {host!r} has no proxy in this worker's configuration ({HOSTS_ENV}: "
                          f"hosts.{host}.haproxy)")
        return Haproxy(address)

    def client(self, host: str) -> Any:
        """The host's client, made once. Making one asks the engine (its API version): a host that does not
        answer holds only the activities that want that host, not every host's (the per-host lock)."""
        with self._lock:
            known = self.hosts()
            if host not in known:
                raise invalid(f"Docker host {host!r} is not one of this worker's ({HOSTS_ENV}: "
                              f"{', '.join(sorted(known)) or 'none'})")
            lock = self._host_locks.setdefault(host, threading.Lock())
        # an ssh:// engine that stalls holds its reader for good (the SDK reads ssh's stdout with no timeout):
        # the activities that want the host meanwhile give up their attempt instead of a thread each
        if not lock.acquire(timeout=90):
            raise ApplicationError(f"Docker host {host}: another activity has been connecting to it for 90 s",
                                   type="DockerUnavailable")
        try:
            if host not in self._clients:
                self._clients[host] = _connected(host, known[host])
            return self._clients[host]
        finally:
            lock.release()


def _host_problem(host: Any) -> str:
    if not isinstance(host, dict) or not isinstance(host.get("engine"), str):
        return "engine: required (unix://, tcp:// with tls, ssh://)"
    engine, tls = host["engine"], host.get("tls")
    if engine.startswith("tcp://") and not (isinstance(tls, dict) and {"ca", "cert", "key"} <= set(tls)):
        return "tls: an engine on tcp:// needs tls {ca, cert, key} (plain TCP is root on the host for anyone)"
    if not engine.startswith(("unix://", "tcp://", "ssh://")):
        return "engine: unix://, tcp:// or ssh://"
    if host.get("haproxy") is not None and not str(host["haproxy"]).startswith(("unix://", "tcp://")):
        return "haproxy: unix:///path or tcp://host:port (its runtime API)"
    if str(host.get("haproxy", "")).startswith("unix://") and not engine.startswith("unix://"):
        return "haproxy: a unix socket is the worker's own machine's; a remote host's proxy is tcp://"
    for key, needed in (("projects", True), ("backends", host.get("haproxy") is not None), ("networks", False)):
        value = host.get(key)
        if value is None and not needed:
            continue
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            return (f"{key}: a list of names, or [\"*\"] for any — the Compose {key} documents may "
                    f"{'weight' if key == 'backends' else 'join' if key == 'networks' else 'roll'} on this host")
    return ""


def _connected(name: str, host: dict[str, Any]) -> Any:
    """`_client`, its faults told apart. Certificate files the hosts file names but the worker cannot read: a
    permanent fault naming `hosts.<name>.tls`. Certificates the engine and the worker do not accept: named
    so, but retried like an engine that does not answer — a certificate rotated on one side first is
    mended by the other, and an abort must get through once it is (`docker_errors` retries it alike)."""
    import docker.errors
    import requests

    try:
        return _client(host)
    except docker.errors.TLSParameterError as error:
        raise invalid(f"{HOSTS_ENV}: hosts.{name}.tls: {error}") from None
    except requests.exceptions.SSLError as error:
        raise ApplicationError(f"{HOSTS_ENV}: hosts.{name}.tls: the engine at {host['engine']} and this worker do "
                               f"not accept each other's certificates (or the handshake failed): {str(error)[-300:]}",
                               type="DockerTLS") from None
    except (requests.RequestException, docker.errors.DockerException, OSError, KeyError) as error:
        raise ApplicationError(f"Docker host {name}: the engine did not answer: {str(error)[-300:]}",
                               type="DockerUnavailable") from None


def _client(host: dict[str, Any]) -> Any:
    import docker
    from docker.constants import MINIMUM_DOCKER_API_VERSION
    from docker.tls import TLSConfig

    engine = host["engine"]
    if engine.startswith("tcp://"):
        # The hosts file's CA alone verifies the engine, and the engine is reached directly: the SDK's requests
        # session would otherwise take REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE over its CA (docker/docker-py#2433,
        # open: every TLS connection fails where either is set, as in many images) and the environment's
        # proxy. The session's trust_env is public but set after construction, and the SDK's "auto" version
        # asks the engine in its constructor: so the version is asked first by a client that already ignores
        # the environment (GET /version, unversioned), then the client is made with it.
        tls = host["tls"]
        config = TLSConfig(client_cert=(tls["cert"], tls["key"]), ca_cert=tls["ca"], verify=True)
        url = engine.replace("tcp://", "https://", 1)
        probe = docker.APIClient(base_url=url, tls=config, timeout=60, version=MINIMUM_DOCKER_API_VERSION)
        probe.trust_env = False
        try:
            version = probe.version(api_version=False)["ApiVersion"]
        finally:
            probe.close()
        client = docker.DockerClient(base_url=url, tls=config, timeout=60, version=version)
        client.api.trust_env = False
        return client
    return docker.DockerClient(base_url=engine, timeout=60, use_ssh_client=engine.startswith("ssh://"))


@contextlib.contextmanager
def docker_errors(what: str) -> Iterator[None]:
    """The Engine API's refusals as ApplicationErrors naming `what` (e.g. "composeHost web-1/shop/api")."""
    import docker.errors
    import requests

    try:
        yield
    except docker.errors.NotFound as error:
        raise ApplicationError(f"{what}: {error.explanation or error}", type="NotFound", non_retryable=True) from None
    except docker.errors.APIError as error:
        status = error.status_code or 0
        if status >= 500 or status in (409, 429) or status == 0:
            raise ApplicationError(f"{what}: {error.explanation or error}", type="DockerUnavailable") from None
        raise invalid(f"{what}: {error.explanation or error}") from None
    except (requests.RequestException, docker.errors.DockerException) as error:
        raise ApplicationError(f"{what}: the engine did not answer: {error}", type="DockerUnavailable") from None
