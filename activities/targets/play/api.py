"""The Google Play Developer API (androidpublisher v3) calls a release makes: edits, bundle uploads
(resumable: a retried upload asks the session how far it got and sends only the rest), tracks."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from temporalio.exceptions import ApplicationError

from activities.targets.play.auth import PUBLISHER_SCOPE, GoogleTokens
from activities.targets.storeapi import StoreApi, raise_for, store_message

API_ENV = "DURABLE_ROLLOUTS_PLAY_API"
CHUNK = 4 * 256 * 1024  # resumable chunks are multiples of 256 KiB


class PlayApi:
    def __init__(self, api: StoreApi | None = None) -> None:
        self.api = api or StoreApi("Google Play", os.environ.get(API_ENV, "https://androidpublisher.googleapis.com/"),
                                   GoogleTokens(PUBLISHER_SCOPE))

    @staticmethod
    def _app(package: str) -> str:
        return f"androidpublisher/v3/applications/{package}"

    def insert_edit(self, package: str) -> str:
        return self.api.json("POST", f"{self._app(package)}/edits", "edits.insert", json={})["id"]

    def edit_exists(self, package: str, edit: str) -> bool:
        return self.api.call("GET", f"{self._app(package)}/edits/{edit}", "edits.get", accept=(404,)).status_code != 404

    def delete_edit(self, package: str, edit: str) -> None:
        self.api.call("DELETE", f"{self._app(package)}/edits/{edit}", "edits.delete", accept=(404,))

    def commit(self, package: str, edit: str) -> None:
        """Commit the edit, its changes sent for review. Play's "cannot be sent for review automatically" is
        final here: `changesNotSentForReview=true` would commit changes no user receives until someone sends
        them for review in the Play Console (a phase judged on nothing, a halt that stops nothing)."""
        path, what = f"{self._app(package)}/edits/{edit}:commit", "edits.commit"
        answer = self.api.call("POST", path, what, accept=(400,), params={"changesNotSentForReview": "false"})
        if answer.status_code == 200:
            return
        message = store_message(answer)
        if "changesNotSentForReview" not in message:
            raise_for("Google Play", what, answer)
        raise ApplicationError(f"Google Play: {what}: Play will not send this change for review automatically: "
                               "send the app's pending changes for review in the Play Console (a staged release "
                               "cannot go on, or halt, on changes no user receives)", type="StoreRejected",
                               non_retryable=True)

    def bundles(self, package: str, edit: str) -> list[dict[str, Any]]:
        return self.api.json("GET", f"{self._app(package)}/edits/{edit}/bundles", "edits.bundles.list").get("bundles", [])

    def track(self, package: str, edit: str, track: str) -> list[dict[str, Any]]:
        return self.api.json("GET", f"{self._app(package)}/edits/{edit}/tracks/{track}",
                             "edits.tracks.get").get("releases", [])

    def update_track(self, package: str, edit: str, track: str, releases: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.api.json("PUT", f"{self._app(package)}/edits/{edit}/tracks/{track}", "edits.tracks.update",
                             json={"track": track, "releases": releases}).get("releases", [])

    # ---- resumable upload ------------------------------------------------------------------------------

    def start_upload(self, package: str, edit: str, size: int) -> str:
        response = self.api.call(
            "POST", f"resumable/upload/{self._app(package)}/edits/{edit}/bundles", "edits.bundles.upload",
            params={"uploadType": "resumable"},
            headers={"X-Upload-Content-Type": "application/octet-stream", "X-Upload-Content-Length": str(size)})
        location = response.headers.get("location")
        if not location:
            raise ApplicationError("Google Play: edits.bundles.upload: no upload session in the answer",
                                   type="StoreUnavailable")
        return location

    def uploaded(self, session: str, size: int) -> tuple[int, dict[str, Any] | None]:
        """How many bytes the session has (and the Bundle, when it is complete); -1: the session is gone."""
        response = self.api.call("PUT", session, "upload status", accept=(404,),
                                 headers={"Content-Range": f"bytes */{size}"})
        return self._progress(response)

    def send(self, session: str, path: Path, offset: int, size: int,
             progress: Callable[[int], None]) -> dict[str, Any]:
        """Send the file from `offset` in chunks, calling `progress(offset)` after each; the Bundle."""
        with path.open("rb") as file:
            file.seek(offset)
            while True:
                chunk = file.read(CHUNK)
                end = offset + len(chunk) - 1
                response = self.api.call("PUT", session, "edits.bundles.upload", content=chunk,
                                         headers={"Content-Range": f"bytes {offset}-{end}/{size}"})
                offset, bundle = self._progress(response)
                if bundle is not None:
                    return bundle
                progress(offset)
                if not chunk:
                    raise ApplicationError("Google Play: upload: the session wants more than the file has",
                                           type="StoreRejected", non_retryable=True)
                file.seek(offset)

    @staticmethod
    def _progress(response) -> tuple[int, dict[str, Any] | None]:
        if response.status_code == 404:
            return -1, None
        if response.status_code in (200, 201):
            return -1, response.json()
        ranged = response.headers.get("range", "")  # 308: "bytes=0-N" (nothing yet: no header)
        return (int(ranged.rsplit("-", 1)[1]) + 1 if ranged else 0), None
