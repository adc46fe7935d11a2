"""Downloads with progress and resume, as a python-tuf fetcher.

Metadata goes through python-tuf's own `Urllib3Fetcher` (proxies from the environment, `NO_PROXY`
included): python-tuf asks for metadata with `download_bytes` and for a target with `download_file`, and
that — not the URL — tells them apart. A target (an artifact) is written to a partial file under
`partial_dir` as it arrives; a download cut off (a crash, a lost network) goes on from where it stopped
with an HTTP `Range` request. Nothing downloaded is trusted: python-tuf checks the whole file's length
and hashes before the agent installs it, and a partial file that fails the check is removed.

Each download has a deadline for the whole of it (`max_seconds`), not only per socket read: a server
that trickles a byte every few seconds cannot hold the agent, and its lock, for ever.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO

import urllib3
from tuf.api import exceptions
from tuf.ngclient import Urllib3Fetcher

Progress = Callable[[int, int], None]  # (bytes so far, total)


class ResumableFetcher(Urllib3Fetcher):
    def __init__(self, partial_dir: str, progress: Progress | None = None, socket_timeout: int = 30,
                 max_seconds: float = 3600, metadata_seconds: float = 120) -> None:
        super().__init__(socket_timeout=socket_timeout, app_user_agent="rollout-agent/0.1")
        self.partial_dir, self.progress = partial_dir, progress
        self.max_seconds, self.metadata_seconds = max_seconds, metadata_seconds
        self.resumed_from = 0  # bytes the last target download did not fetch again
        self._deadline = float("inf")

    @contextlib.contextmanager
    def _watchdog(self, response: urllib3.BaseHTTPResponse, url: str) -> Iterator[None]:
        """At the deadline the response is shut down from another thread (a read blocked on a trickle
        returns at once) and the download fails naming its limit."""
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            response.shutdown()

        timer = threading.Timer(max(0.0, self._deadline - time.monotonic()), expire)
        timer.daemon = True
        if self._deadline != float("inf"):
            timer.start()
        try:
            yield
        except Exception as error:
            if expired.is_set():
                raise exceptions.DownloadError(f"{url}: not finished within its time limit") from error
            raise
        finally:
            timer.cancel()
        if expired.is_set():
            raise exceptions.DownloadError(f"{url}: not finished within its time limit")

    def _chunks(self, response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:  # python-tuf's metadata path
        with self._watchdog(response, response.geturl() or "metadata"):
            yield from super()._chunks(response)

    def download_bytes(self, url: str, max_length: int) -> bytes:
        """Metadata (python-tuf's own path), within `metadata_seconds`."""
        self._deadline = time.monotonic() + self.metadata_seconds
        try:
            with super().download_file(url, max_length) as file:
                return file.read()
        finally:
            self._deadline = float("inf")

    def partial_path(self, url: str) -> str:
        return os.path.join(self.partial_dir, hashlib.sha256(url.encode()).hexdigest()[:32] + ".part")

    def discard(self, url: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.partial_path(url))

    @contextlib.contextmanager
    def download_file(self, url: str, max_length: int) -> Iterator[IO]:
        """A target, resumable, within `max_seconds`."""
        os.makedirs(self.partial_dir, exist_ok=True)
        path = self.partial_path(url)
        have = os.path.getsize(path) if os.path.exists(path) else 0
        if have > max_length:
            os.remove(path)
            have = 0
        self.resumed_from = 0
        if have < max_length:
            self._deadline = time.monotonic() + self.max_seconds
            try:
                self._fetch_into(url, path, have, max_length)
            finally:
                self._deadline = float("inf")
        elif self.progress:
            self.progress(have, max_length)
            self.resumed_from = have
        with open(path, "rb") as file:
            yield file

    def _fetch_into(self, url: str, path: str, have: int, max_length: int) -> None:
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            response = self._proxy_env.request("GET", url, preload_content=False, headers=headers,
                                               timeout=urllib3.Timeout(self.socket_timeout))
        except urllib3.exceptions.MaxRetryError as error:
            raise exceptions.DownloadError(f"{url}: {error.reason}") from error
        try:
            if response.status >= 400:
                raise exceptions.DownloadHTTPError(f"HTTP {response.status} for {url}", response.status)
            if response.status != 206:  # the server sends the whole file: start again
                have = 0
            self.resumed_from = have
            with open(path, "ab" if have else "wb") as out, self._watchdog(response, url):
                for chunk in response.stream(self.chunk_size):
                    have += len(chunk)
                    if have > max_length:
                        raise exceptions.DownloadLengthMismatchError(f"{url} is longer than the {max_length} bytes "
                                                                     "its signed metadata says")
                    out.write(chunk)
                    out.flush()
                    if self.progress:
                        self.progress(have, max_length)
        except urllib3.exceptions.HTTPError as error:
            raise exceptions.DownloadError(f"{url}: {error}") from error
        finally:
            response.release_conn()
