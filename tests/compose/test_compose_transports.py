"""A Compose host reached as a remote host is, with the worker's hosts file naming only that address:
- over `tcp://` with mutual TLS: the tests' engine also listens on its TLS port (`dockerd --tlsverify`, a
  CA of the test's own: localcluster/enginetls.py), relayed to loopback outside its namespace; a client
  whose certificate another CA signed, or one with none, is refused by the engine;
- over `ssh://`: Debian's sshd in the engine's namespace, the worker's key and the host's in its HOME, as
  `docker -H ssh://` uses them (the system `ssh`, then `docker system dial-stdio` on the host).
A rolling update goes through each (localcluster/hostaccess.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import requests
import yaml
from temporalio.exceptions import ApplicationError

from activities.docker import DockerHosts
from tests.compose.helpers import REPO, compose_document, containers


def _hosts(path, engine: str, project: str, ca, cert, key=None):
    tls = {"ca": str(ca), "cert": str(cert), **({"key": str(key)} if key else {})}
    path.write_text(yaml.safe_dump({"hosts": {"web-1": {"engine": engine, "projects": [project], "tls": tls}}}))
    return path


async def test_a_rolling_update_over_tcp_with_mutual_tls(docker_host, dev_server, release_worker_processes, unique,
                                                         tmp_path, monkeypatch):
    """With REQUESTS_CA_BUNDLE set, as in many images: the hosts file's CA still verifies the engine (the SDK's
    session would take the variable's bundle instead: docker/docker-py#2433)."""
    bundle = {"REQUESTS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt", "CURL_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt"}
    for name, value in bundle.items():
        monkeypatch.setenv(name, value)
    engine, c = docker_host.tcp_engine(), docker_host.certificates
    project = f"tls{unique}".lower().replace("_", "-")
    hosts = _hosts(tmp_path / "docker-hosts.yaml", engine, project, c["ca"], c["client-cert"], c["client-key"])
    assert DockerHosts(str(hosts)).client("web-1").ping()

    stranger = DockerHosts(str(_hosts(tmp_path / "stranger.yaml", engine, project, c["ca"], c["stranger-cert"],
                                      c["stranger-key"])))
    with pytest.raises(ApplicationError, match="web-1") as refused:  # the engine's handshake refuses it (an alert,
        stranger.client("web-1")                                    # or under TLS 1.3 possibly a reset)
    assert refused.value.type in ("DockerTLS", "DockerUnavailable")
    # the mirror case: the environment's bundle would accept the engine, the hosts file's CA does not
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(c["ca"]))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(c["ca"]))
    other_ca = DockerHosts(str(_hosts(tmp_path / "other-ca.yaml", engine, project, c["stranger-ca"], c["client-cert"],
                                      c["client-key"])))
    with pytest.raises(ApplicationError, match="hosts.web-1.tls: .*CERTIFICATE_VERIFY_FAILED") as refused:
        other_ca.client("web-1")
    assert refused.value.type == "DockerTLS" and not refused.value.non_retryable  # rotated on one side: retried
    for name, value in bundle.items():
        monkeypatch.setenv(name, value)
    # the engine's TLS port answers no one without a certificate of its CA (the SDK needs key and cert: the
    # worker's configuration refuses an entry without them, so the request is made by hand)
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(f"{engine.replace('tcp://', 'https://')}/_ping", verify=str(c["ca"]), timeout=10)

    await _roll(docker_host, dev_server, release_worker_processes, project, f"tls-{unique}", tmp_path,
                {"ROLLOUT_DOCKER_HOSTS": str(hosts), **bundle})


async def test_a_rolling_update_over_ssh(docker_host, dev_server, release_worker_processes, unique, tmp_path,
                                         monkeypatch, capfd):
    """The engine over SSH; a host whose key is not the one known is refused before anything is sent."""
    # keys outside the suite's temporary directory (a worker refuses artifact roots over its own secrets)
    home = Path(tempfile.mkdtemp(prefix="home", dir="/tmp"))
    engine = docker_host.ssh_engine(home)
    project = f"ssh{unique}".lower().replace("_", "-")
    hosts = tmp_path / "docker-hosts.yaml"
    hosts.write_text(yaml.safe_dump({"hosts": {"web-1": {"engine": engine, "projects": [project]}}}))
    path = f"{home / 'bin'}{os.pathsep}{os.environ['PATH']}"
    monkeypatch.setenv("PATH", path)
    known = home / ".ssh" / "known_hosts"
    genuine = known.read_text()
    impostor = home / "impostor"
    docker_host.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(impostor)])
    known.write_text(genuine.split()[0] + " " + impostor.with_suffix(".pub").read_text())
    try:
        with pytest.raises(ApplicationError, match="Connection aborted"):
            DockerHosts(str(hosts)).client("web-1")
        assert "Host key verification failed" in capfd.readouterr().err  # the system ssh's own refusal
        known.write_text(genuine)
        assert DockerHosts(str(hosts)).client("web-1").ping()
        await _roll(docker_host, dev_server, release_worker_processes, project, f"ssh-{unique}", tmp_path,
                    {"ROLLOUT_DOCKER_HOSTS": str(hosts), "PATH": path})
    finally:
        shutil.rmtree(home, ignore_errors=True)


async def _roll(docker_host, dev_server, release_worker_processes, project: str, name: str, tmp_path, env: dict) -> None:
    """Service `web` of `project` up on 1.0.0 (2 containers), rolled to 2.0.0 by a worker with `env`."""
    release_worker_processes(dev_server.address, name, "--targets", "docker", env=env)
    old, new = docker_host.service_image("shop/web", "1.0.0"), docker_host.service_image("shop/web", "2.0.0")
    try:
        up = docker_host.compose(project, compose_document("up", project, old, replicas=2)["spec"]["target"]
                                 ["composeHost"]["compose"], "up", "-d", "--wait")
        assert up.returncode == 0, up.stderr
        spec = tmp_path / f"{name}.yaml"
        spec.write_text(yaml.safe_dump(compose_document(name, project, new, replicas=2)))
        result = subprocess.run([sys.executable, "-m", "starters.cli", "start", "-f", str(spec), "--wait"],
                                capture_output=True, text=True, cwd=REPO, timeout=180,
                                env={**os.environ, "TEMPORAL_ADDRESS": dev_server.address, "ROLLOUT_TASK_QUEUE": name})
        assert result.returncode == 0 and f"rollout/test/{name}: Healthy" in result.stdout, \
            result.stdout + result.stderr
        after = containers(docker_host, project)
        assert [each["Config"]["Image"] for each in after] == [new] * 2
    finally:
        client = docker_host.client()
        for container in client.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"}):
            container.remove(force=True)
        client.close()
