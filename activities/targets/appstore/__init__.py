"""The App Store channel's activities (App Store Connect API v1): prepare the version (find the
processed build, find or create the `appStoreVersion`, attach the build, add a phased release),
submit it for review, read it, release it, and set its phased release. Each looks before it creates,
so a retry after a crash finds its own earlier work; a phased release that is `COMPLETE` is left so
(Apple resumes nothing after it). A phased release "is not available for the first version of an app":
an app with no version released on the platform is refused before anything is created. A release
request is sent only for a version in `PENDING_DEVELOPER_RELEASE` (the only state Apple takes it in); a
version made in App Store Connect to release itself (AFTER_APPROVAL, SCHEDULED) is set MANUAL while it
can be, and refused once it cannot."""

from __future__ import annotations

import os
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.targets.appstore.auth import AppleTokens
from activities.targets.storeapi import StoreApi, UsesStore
from models.appstore import AppStoreVersionInput, AppStoreVersionState, PhasedReleaseInput

API_ENV = "DURABLE_ROLLOUTS_APPSTORE_API"
IN_REVIEW = ("WAITING_FOR_REVIEW", "IN_REVIEW")
APPROVED = ("PENDING_DEVELOPER_RELEASE", "PENDING_APPLE_RELEASE", "ACCEPTED")
RELEASED = ("PROCESSING_FOR_DISTRIBUTION", "READY_FOR_DISTRIBUTION")
RELEASABLE = "PENDING_DEVELOPER_RELEASE"
EDITABLE = ("PREPARE_FOR_SUBMISSION", "REJECTED", "DEVELOPER_REJECTED", "METADATA_REJECTED")
RELEASED_BEFORE = ("READY_FOR_DISTRIBUTION", "REPLACED_WITH_NEW_VERSION", "PROCESSING_FOR_DISTRIBUTION")
REJECTED = ("REJECTED", "METADATA_REJECTED", "DEVELOPER_REJECTED", "INVALID_BINARY")


def _ref(kind: str, id_: str) -> dict[str, Any]:
    return {"data": {"type": kind, "id": id_}}


class AppStoreActivities(UsesStore):
    def build_api(self) -> StoreApi:
        return StoreApi("App Store Connect", os.environ.get(API_ENV, "https://api.appstoreconnect.apple.com/"),
                        AppleTokens())

    # ---- reading --------------------------------------------------------------------------------------

    def _build(self, request: AppStoreVersionInput) -> dict[str, Any]:
        c = request.channel
        found = self.api.json("GET", "v1/builds", "builds", params={
            "filter[app]": c.app_id, "filter[version]": request.build,
            "filter[preReleaseVersion.version]": request.version, "filter[preReleaseVersion.platform]": c.platform,
            "limit": "1"})["data"]
        if not found:
            raise ApplicationError(f"App Store Connect: no build {request.build} of {request.version} uploaded yet",
                                   type="BuildNotReady")
        build = found[0]
        processing = build["attributes"].get("processingState")
        if processing in ("FAILED", "INVALID"):
            raise ApplicationError(f"App Store Connect: build {request.build} is {processing}", type="StoreRejected",
                                   non_retryable=True)
        if processing != "VALID":
            raise ApplicationError(f"App Store Connect: build {request.build} is {processing}", type="BuildNotReady")
        return build

    def _version(self, request: AppStoreVersionInput) -> dict[str, Any] | None:
        c = request.channel
        found = self.api.json("GET", f"v1/apps/{c.app_id}/appStoreVersions", "appStoreVersions", params={
            "filter[versionString]": request.version, "filter[platform]": c.platform, "limit": "1"})["data"]
        return found[0] if found else None

    def _phased(self, version_id: str) -> dict[str, Any] | None:
        answer = self.api.call("GET", f"v1/appStoreVersions/{version_id}/appStoreVersionPhasedRelease",
                               "appStoreVersionPhasedRelease", accept=(404,))
        return None if answer.status_code == 404 else answer.json().get("data")

    def _state(self, version: dict[str, Any], build_id: str = "") -> AppStoreVersionState:
        phased = self._phased(version["id"])
        attributes = (phased or {}).get("attributes", {})
        return AppStoreVersionState(
            version_id=version["id"], build_id=build_id, state=version["attributes"].get("appVersionState", ""),
            phased_release_id=(phased or {}).get("id", ""), phased_state=attributes.get("phasedReleaseState", "INACTIVE"),
            day=attributes.get("currentDayNumber") or 0, paused_seconds=attributes.get("totalPauseDuration") or 0)

    @activity.defn(name="read_app_store_version")
    def read_version(self, request: AppStoreVersionInput) -> AppStoreVersionState:
        version = self._version(request)
        if version is None:
            raise ApplicationError(f"App Store Connect: app {request.channel.app_id} has no version {request.version}",
                                   type="NotFound", non_retryable=True)
        return self._state(version)

    # ---- preparing and submitting ---------------------------------------------------------------------

    def _first_version(self, request: AppStoreVersionInput) -> bool:
        """No other version of the app was ever released on the platform."""
        c = request.channel
        released = self.api.json("GET", f"v1/apps/{c.app_id}/appStoreVersions", "released appStoreVersions", params={
            "filter[platform]": c.platform, "filter[appVersionState]": ",".join(RELEASED_BEFORE), "limit": "2"})["data"]
        return not [v for v in released if v["attributes"].get("versionString") != request.version]

    @activity.defn(name="prepare_app_store_version")
    def prepare_version(self, request: AppStoreVersionInput) -> AppStoreVersionState:
        c, api = request.channel, self.api
        build = self._build(request)
        version = self._version(request)
        if (version is None or self._phased(version["id"]) is None) and self._first_version(request):
            raise ApplicationError(
                f"App Store Connect: app {c.app_id} has no version released on {c.platform}: {request.version} would "
                "be its first, and Apple's phased release is not available for the first version of an app "
                "(release it from App Store Connect; use this channel for the updates after it)",
                type="StoreRejected", non_retryable=True)
        if version is None:
            version = api.json("POST", "v1/appStoreVersions", "create appStoreVersion", json={"data": {
                "type": "appStoreVersions",
                "attributes": {"platform": c.platform, "versionString": request.version, "releaseType": "MANUAL"},
                "relationships": {"app": _ref("apps", c.app_id)}}})["data"]
        activity.heartbeat(version["id"])
        editable = version["attributes"].get("appVersionState") in EDITABLE
        release_type = version["attributes"].get("releaseType") or "MANUAL"
        if release_type != "MANUAL":  # made in App Store Connect: Apple would release it, ungated
            if not editable:
                raise ApplicationError(
                    f"App Store Connect: version {request.version} releases itself ({release_type}) and is "
                    f"{version['attributes'].get('appVersionState')}: its release type can no longer change; the "
                    "channel releases MANUAL versions only", type="StoreRejected", non_retryable=True)
            api.call("PATCH", f"v1/appStoreVersions/{version['id']}", "release type MANUAL", json={"data": {
                "type": "appStoreVersions", "id": version["id"], "attributes": {"releaseType": "MANUAL"}}})
        if editable:
            api.call("PATCH", f"v1/appStoreVersions/{version['id']}/relationships/build", "attach the build",
                     json=_ref("builds", build["id"]))
        if self._phased(version["id"]) is None:
            api.json("POST", "v1/appStoreVersionPhasedReleases", "create appStoreVersionPhasedRelease", json={"data": {
                "type": "appStoreVersionPhasedReleases", "attributes": {"phasedReleaseState": "INACTIVE"},
                "relationships": {"appStoreVersion": _ref("appStoreVersions", version["id"])}}})
        return self._state(version, build["id"])

    @activity.defn(name="submit_app_store_review")
    def submit_for_review(self, request: AppStoreVersionInput) -> AppStoreVersionState:
        """Into a review submission (the app's open one, or a new one) and submitted, unless App Review
        has it already."""
        c, api = request.channel, self.api
        version = self._version(request)
        if version is None:
            raise ApplicationError(f"App Store Connect: no version {request.version} to submit", type="NotFound",
                                   non_retryable=True)
        if version["attributes"].get("appVersionState") not in ("PREPARE_FOR_SUBMISSION", "READY_FOR_REVIEW"):
            return self._state(version)
        open_ = api.json("GET", "v1/reviewSubmissions", "reviewSubmissions", params={
            "filter[app]": c.app_id, "filter[platform]": c.platform, "filter[state]": "READY_FOR_REVIEW"})["data"]
        submission = open_[0] if open_ else api.json("POST", "v1/reviewSubmissions", "create reviewSubmission", json={
            "data": {"type": "reviewSubmissions", "attributes": {"platform": c.platform},
                     "relationships": {"app": _ref("apps", c.app_id)}}})["data"]
        added = api.call("POST", "v1/reviewSubmissionItems", "add the version to the review submission",
                         accept=(409,), json={"data": {"type": "reviewSubmissionItems", "relationships": {
                             "reviewSubmission": _ref("reviewSubmissions", submission["id"]),
                             "appStoreVersion": _ref("appStoreVersions", version["id"])}}})
        activity.heartbeat(added.status_code)
        api.call("PATCH", f"v1/reviewSubmissions/{submission['id']}", "submit for review", json={
            "data": {"type": "reviewSubmissions", "id": submission["id"], "attributes": {"submitted": True}}})
        return self._state(self._version(request) or version)

    @activity.defn(name="release_app_store_version")
    def release_version(self, request: AppStoreVersionInput) -> AppStoreVersionState:
        """The approved version released (its phased release starts at day 1): a release request only in
        `PENDING_DEVELOPER_RELEASE`; in any other state the version is read and returned as it is."""
        version = self._version(request)
        if version is None:
            raise ApplicationError(f"App Store Connect: no version {request.version}", type="NotFound",
                                   non_retryable=True)
        if version["attributes"].get("appVersionState") == RELEASABLE:  # Apple refuses a release request otherwise
            self.api.call("POST", "v1/appStoreVersionReleaseRequests", "release the version", json={"data": {
                "type": "appStoreVersionReleaseRequests",
                "relationships": {"appStoreVersion": _ref("appStoreVersions", version["id"])}}})
            version = self._version(request) or version
        return self._state(version)

    # ---- the phased release ---------------------------------------------------------------------------

    @activity.defn(name="set_app_store_phased_release")
    def set_phased_release(self, request: PhasedReleaseInput) -> AppStoreVersionState:
        phased = self._phased(request.version_id)
        if phased is None:
            raise ApplicationError(f"App Store Connect: version {request.version_id} has no phased release",
                                   type="NotFound", non_retryable=True)
        current = phased["attributes"].get("phasedReleaseState")
        if current != request.state and current != "COMPLETE":
            self.api.call("PATCH", f"v1/appStoreVersionPhasedReleases/{phased['id']}",
                          f"phased release {request.state}", json={"data": {
                              "type": "appStoreVersionPhasedReleases", "id": phased["id"],
                              "attributes": {"phasedReleaseState": request.state}}})
        version = self.api.json("GET", f"v1/appStoreVersions/{request.version_id}", "appStoreVersion")["data"]
        return self._state(version)
