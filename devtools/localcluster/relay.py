"""Relays between sockets for the Docker hosts' network namespaces (localcluster/dockerhost.py): a listener's
connections carried to a unix socket, or to what a callable connects to. Run as a module inside a namespace
(`nsenter … python -m localcluster.relay LISTEN TARGET`, each a port of 127.0.0.1 there or a unix socket's
path, a file both sides see): what connects to LISTEN is relayed to TARGET; `--probe PORT` exits 0 once
something accepts on 127.0.0.1:PORT."""

from __future__ import annotations

import socket
import sys
import threading
from pathlib import Path


def relay(listener, path, log: Path | None = None, intercept=None) -> None:
    """Accept on `listener` and relay each connection to the unix socket `path` (or what the callable `path`
    connects to), both ways, in threads; with `log`, the first line of each connection's first chunk appended
    to it (one line per HAProxy runtime request: one per connection); with
    `intercept`, it is called with the first line of every chunk a client sends, and a false answer drops
    that chunk and the connection (a kill test's moment between two calls)."""
    def pipe(source, sink, record: bool) -> None:
        client_side = record
        try:
            while data := source.recv(65536):
                if client_side and intercept is not None and not intercept(data.decode(errors="replace").split("\r\n")[0]):
                    break
                if record and log is not None:
                    with open(log, "a") as out:
                        out.write(data.decode(errors="replace").splitlines()[0] + "\n")
                    record = False
                sink.sendall(data)
        except OSError:
            pass
        finally:  # shutdown, not only close: the other direction's thread is blocked in recv on these
            for end in (sink, source):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                end.close()

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # the listener was shut down: the relay ends
                return
            try:
                if callable(path):
                    upstream = path()
                    upstream.settimeout(None)
                else:
                    upstream = socket.socket(socket.AF_UNIX)
                    upstream.connect(path)
            except OSError:
                client.close()
                continue
            threading.Thread(target=pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=pipe, args=(upstream, client, False), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()


if __name__ == "__main__":
    if sys.argv[1] == "--probe":
        try:
            socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=2).close()
        except OSError as error:
            sys.exit(f"127.0.0.1:{sys.argv[2]}: {error}")
    else:
        given, target = sys.argv[1], sys.argv[2]
        if given.isdigit():
            listener = socket.create_server(("127.0.0.1", int(given)))
        else:
            listener = socket.socket(socket.AF_UNIX)
            listener.bind(given)
            listener.listen(16)
        relay(listener, (lambda: socket.create_connection(("127.0.0.1", int(target)), timeout=10))
              if target.isdigit() else target)
        threading.Event().wait()
