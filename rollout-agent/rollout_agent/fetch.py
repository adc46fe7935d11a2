"""Downloads with progress and resume, as a python-tuf fetcher.

Metadata goes through python-tuf's own `Urllib3Fetcher` (proxies from the environment, `NO_PROXY`
included). A target (an artifact) is written to a partial file under `partial_dir` as it arrives; a
download cut off (a crash, a lost network) goes on from where it stopped with an HTTP `Range` request.
Nothing downloaded is trusted: python-tuf checks the whole file's length and hashes before the agent
installs it, and a partial file that fails the check is removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator
from typing import IO

import urllib3
from tuf.api import exceptions
from tuf.ngclient import Urllib3Fetcher

Progress = Callable[[int, int], None]  # (bytes so far, total)


class ResumableFetcher(Urllib3Fetcher):
    def __init__(self, partial_dir: str, progress: Progress | None = None, socket_timeout: int = 30) -> None:
        super().__init__(socket_timeout=socket_timeout, app_user_agent="rollout-agent/0.1")
        self.partial_dir, self.progress = partial_dir, progress
        self.resumed_from = 0  # bytes the last target download did not fetch again

    def partial_path(self, url: str) -> str:
        return os.path.join(self.partial_dir, hashlib.sha256(url.encode()).hexdigest()[:32] + ".part")

    def discard(self, url: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.partial_path(url))

    @contextlib.contextmanager
    def download_file(self, url: str, max_length: int) -> Iterator[IO]:
        if "/targets/" not in url:  # metadata: python-tuf's own path
            with super().download_file(url, max_length) as file:
                yield file
            return
        os.makedirs(self.partial_dir, exist_ok=True)
        path = self.partial_path(url)
        have = os.path.getsize(path) if os.path.exists(path) else 0
        if have > max_length:
            os.remove(path)
            have = 0
        self.resumed_from = 0
        if have < max_length:
            self._fetch_into(url, path, have, max_length)
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
            with open(path, "ab" if have else "wb") as out:
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
