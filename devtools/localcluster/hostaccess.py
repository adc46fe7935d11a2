"""How the outside reaches a test Docker host in its network namespace, and the reverse (a mixin of
`DockerHost`, localcluster/dockerhost.py): the engine on `tcp://` with mutual TLS and over SSH, each
relayed out to a loopback port; a loopback port of the outside (the tests' Temporal, an apiserver) exposed
at the same address inside, for a container on the namespace's network. Only loopback, on both sides."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from localcluster.relay import relay

TLS_PORT = 2376  # Docker's port for TLS, inside the namespace
SSH_PORT = 22  # sshd's, inside the namespace


class Reachable:
    """Needs the host's `root`, `pid`, `name`, `engine`, `tls`, `certificates`, `exposed` and `inside`."""

    def _tls_flags(self) -> str:
        """With `tls`: also `tcp://127.0.0.1:2376` inside the namespace, mutual TLS (`--tlsverify`) with the
        certificates of `certificates` (localcluster/enginetls.py)."""
        if not self.tls:
            return ""
        from localcluster.enginetls import engine_certificates

        self.certificates = engine_certificates(self.root / "tls")
        c = self.certificates
        return (f" -H tcp://127.0.0.1:{TLS_PORT} --tlsverify --tlscacert {c['ca']} --tlscert {c['server-cert']}"
                f" --tlskey {c['server-key']}")

    def tcp_engine(self) -> str:
        """The engine's TLS port inside the namespace, relayed to a loopback port outside (`tcp://` address)."""
        return f"tcp://127.0.0.1:{self._outward(TLS_PORT)}"

    def ssh_engine(self, home: Path) -> str:
        """Debian's sshd inside the namespace (root, one key; its sessions' DOCKER_HOST this engine), relayed
        outside: the `ssh://` address, with `home/.ssh` holding the client's key and the host's key in
        `known_hosts` and `home/bin` an `ssh` that uses them — a worker with `home/bin` first on its PATH
        reaches the engine as `docker -H ssh://` does."""
        keys, ssh = self.root / "ssh", home / ".ssh"
        if keys.exists():
            raise RuntimeError(f"{self.name} runs its sshd already: ssh_engine once per host")
        keys.mkdir()
        ssh.mkdir(parents=True, exist_ok=True, mode=0o700)
        for path in (keys / "host_key", ssh / "id_ed25519"):
            self.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)])
        config = keys / "sshd_config"
        config.write_text(f"Port {SSH_PORT}\nListenAddress 127.0.0.1\nHostKey {keys / 'host_key'}\n"
                          f"AuthorizedKeysFile {ssh / 'id_ed25519.pub'}\nPasswordAuthentication no\nUsePAM no\n"
                          f"StrictModes no\nPermitRootLogin prohibit-password\nPidFile {keys / 'sshd.pid'}\n"
                          f"SetEnv DOCKER_HOST={self.engine}\n")
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
        log = open(keys / "sshd.log", "ab")
        self.exposed.append(subprocess.Popen(["nsenter", "-t", str(self.pid), "-n", "/usr/sbin/sshd", "-D", "-e",
                                              "-f", str(config)], stdout=log, stderr=log, start_new_session=True))
        port = self._outward(SSH_PORT)
        host_key = (keys / "host_key.pub").read_text().split()
        (ssh / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
        # OpenSSH finds ~/.ssh through the user's passwd entry, not HOME: `home/bin/ssh` runs the system ssh
        # with `home/.ssh/config` (what the worker user's own ~/.ssh/config would say), for PATH to put first.
        (ssh / "config").write_text(f"Host 127.0.0.1\n  IdentityFile {ssh / 'id_ed25519'}\n"
                                    f"  UserKnownHostsFile {ssh / 'known_hosts'}\n  StrictHostKeyChecking yes\n"
                                    "  BatchMode yes\n")
        (home / "bin").mkdir(exist_ok=True)
        wrapper = home / "bin" / "ssh"
        wrapper.write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F {ssh / "config"} "$@"\n')
        wrapper.chmod(0o755)
        return f"ssh://root@127.0.0.1:{port}"

    def _outward(self, port: int) -> int:
        """127.0.0.1:`port` inside the namespace relayed to a loopback port outside (returned)."""
        import socket

        path = self.root / f"outward-{port}.sock"
        self.exposed.append(subprocess.Popen(["nsenter", "-t", str(self.pid), "-n", sys.executable, "-m",
                                              "localcluster.relay", str(path), str(port)], start_new_session=True))
        self.listening(port, self.exposed[-1], f"nothing answers on {self.name}'s 127.0.0.1:{port} to relay outside")
        deadline = time.monotonic() + 15
        while not path.exists():  # the relay inside listens on it
            if self.exposed[-1].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the relay of {self.name}'s 127.0.0.1:{port} did not start")
            time.sleep(0.1)
        listener = socket.create_server(("127.0.0.1", 0))
        relay(listener, str(path))
        return listener.getsockname()[1]

    def listening(self, port: int, process: subprocess.Popen, failure: str, timeout: float = 15) -> None:
        """Until something accepts on 127.0.0.1:`port` inside the namespace; `failure` if `process` (what should
        listen there) ends or `timeout` passes first."""
        deadline = time.monotonic() + timeout
        while self.inside([sys.executable, "-m", "localcluster.relay", "--probe", str(port)], check=False).returncode:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(failure)
            time.sleep(0.2)

    def expose(self, port: int) -> None:
        """The outside's 127.0.0.1:`port` (the tests' Temporal, a kube-apiserver) reachable at the same address
        inside the namespace — for a container on the namespace's network (the worker's image): a listener
        there relays each connection over a unix socket in the state directory to a thread here, which opens
        the TCP connection outside. Only loopback, on both sides."""
        import socket

        path = self.root / f"expose-{port}.sock"
        if path.exists():  # exposed already (an earlier test of the session)
            return
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(path))
        listener.listen(16)
        relay(listener, lambda: socket.create_connection(("127.0.0.1", port), timeout=10))
        inside = subprocess.Popen(["nsenter", "-t", str(self.pid), "-n", sys.executable, "-m", "localcluster.relay",
                                   str(port), str(path)], start_new_session=True)
        self.exposed.append(inside)  # stopped with the host
        try:
            self.listening(port, inside, f"127.0.0.1:{port} was not exposed in {self.name}'s namespace")
        except RuntimeError:
            inside.kill()
            listener.close()
            path.unlink(missing_ok=True)  # not "exposed already" for the next call
            raise
