"""The Google Play channel's activities: upload a bundle once and put it on the track in the same edit,
set the track's staged release, read the track. Each is idempotent: the upload looks the bundle up by
its sha256 before sending a byte and resumes its own session after a crash (Play refuses a version code
twice); a track change compares the track with what is wanted and commits only a difference. The API
client comes from the constructor; the key is read inside the activity (`activities/targets/play/auth.py`)."""

from __future__ import annotations

from typing import Any

from temporalio import activity

from activities.artifacts import artifact_file
from activities.targets.files import file_digest
from activities.targets.play.api import PlayApi
from activities.targets.storeapi import UsesStore
from models.play import PlayBundle, PlayTrackInput, PlayTrackQuery, PlayTrackRelease, PlayTrackState, PlayUploadInput

STAGED = ("inProgress", "halted")


def _codes(release: dict[str, Any]) -> list[int]:
    return [int(c) for c in release.get("versionCodes", [])]


def _shape(releases: list[dict[str, Any]]) -> list[tuple]:
    """What a track change is judged by: each release's status, fraction and version codes."""
    return sorted((r.get("status"), round(r.get("userFraction") or 0.0, 6), tuple(sorted(_codes(r))))
                  for r in releases)


def wanted_releases(current: list[dict[str, Any]], request: PlayTrackInput) -> list[dict[str, Any]]:
    """The track's releases with ours at the wanted share: completed at 100 % (superseding the
    previous completed release), else staged beside the previous completed one."""
    c, code = request.channel, request.version_code
    ours_now = next((r for r in current if code in _codes(r)), None)
    ours: dict[str, Any] = {"versionCodes": [str(code)], "name": c.release_name or request.version_name}
    if c.release_notes:
        ours["releaseNotes"] = [{"language": lang, "text": text} for lang, text in sorted(c.release_notes.items())]
    if c.in_app_update_priority is not None:
        ours["inAppUpdatePriority"] = c.in_app_update_priority
    others = [r for r in current if code not in _codes(r)]
    if request.draft:  # on the track, served to nobody (already there in any state: left so)
        return current if ours_now is not None else others + [{**ours, "status": "draft"}]
    if request.basis_points >= 10_000 and not request.halted:
        return [r for r in others if r.get("status") == "draft"] + [{**ours, "status": "completed"}]
    if request.basis_points == 0 and (ours_now is None or ours_now.get("status") == "draft"):
        # nothing released yet: a halt (going back before the first phase) takes our draft off the track
        return others if request.halted else current
    fraction = request.basis_points / 10_000
    if not 0 < fraction < 1:  # halted at 100 %, or at 0 %: the fraction it was served at stays
        fraction = (ours_now or {}).get("userFraction") or 0.0001
    staged = {**ours, "status": "halted" if request.halted else "inProgress", "userFraction": round(fraction, 6)}
    return [r for r in others if r.get("status") not in STAGED] + [staged]


def state_of(releases: list[dict[str, Any]], committed: bool = False) -> PlayTrackState:
    return PlayTrackState(committed=committed, releases=[
        PlayTrackRelease(status=r.get("status", "statusUnspecified"), version_codes=_codes(r),
                         user_fraction=r.get("userFraction"), name=r.get("name")) for r in releases])


class PlayActivities(UsesStore):
    def build_api(self) -> PlayApi:
        return PlayApi()

    @activity.defn(name="upload_play_bundle")
    def upload_bundle(self, request: PlayUploadInput) -> PlayBundle:
        """The bundle in the app's library: found by sha256 (uploaded=False), else sent once through a
        resumable session that a retried attempt continues from where the last one stopped; with
        `track`, put on the track in the same edit, committed together."""
        path, package, api = artifact_file(request.path), request.package_name, self.api
        sha256, size = file_digest(path)  # no heartbeat yet: the first one must carry the session
        before = next((d for d in activity.info().heartbeat_details if isinstance(d, dict)), {})
        edit = before.get("edit") if before.get("sha256") == sha256 else None
        if edit is None or not api.edit_exists(package, edit):
            edit, before = api.insert_edit(package), {}
        known = next((b for b in api.bundles(package, edit) if b.get("sha256") == sha256), None)
        bundle = known
        if known is None:
            session = before.get("session")
            offset, bundle = api.uploaded(session, size) if session else (-1, None)
            if offset < 0 and bundle is None:
                session, offset = api.start_upload(package, edit, size), 0
            # An attempt's first heartbeat reaches the server at once (later ones are throttled): it carries
            # everything a retry needs; how far the upload got, the retry asks the session itself.
            activity.heartbeat({"sha256": sha256, "edit": edit, "session": session})
            if bundle is None:
                bundle = api.send(session, path, offset, size, lambda sent: activity.heartbeat(
                    {"sha256": sha256, "edit": edit, "session": session, "sent": sent}))
        code = int(bundle["versionCode"])
        placed = request.track is not None and self._place(api, edit, request.track.model_copy(
            update={"version_code": code}))
        # known and no `before`: committed earlier (another release); `before`: uploaded into this edit
        if known is not None and not before and not placed:
            api.delete_edit(package, edit)
            return PlayBundle(version_code=code, sha256=sha256, uploaded=False)
        api.commit(package, edit)
        return PlayBundle(version_code=code, sha256=sha256, uploaded=known is None)

    @staticmethod
    def _place(api: PlayApi, edit: str, request: PlayTrackInput) -> bool:
        """The track in `edit` as the request wants it; True when it changed."""
        c = request.channel
        current = api.track(c.package_name, edit, c.track)
        wanted = wanted_releases(current, request)
        if _shape(wanted) == _shape(current):
            return False
        api.update_track(c.package_name, edit, c.track, wanted)
        return True

    @activity.defn(name="set_play_track")
    def set_track(self, request: PlayTrackInput) -> PlayTrackState:
        """One edit: the track as wanted (`wanted_releases`), committed only when it differs. A halted
        release goes to completed through inProgress (Play completes no halted release)."""
        c, api = request.channel, self.api
        edit = api.insert_edit(c.package_name)
        current = api.track(c.package_name, edit, c.track)
        wanted = wanted_releases(current, request)
        if _shape(wanted) == _shape(current):
            api.delete_edit(c.package_name, edit)
            return state_of(current)
        ours_now = next((r for r in current if request.version_code in _codes(r)), None)
        if ours_now is not None and ours_now.get("status") == "halted" and wanted[-1].get("status") == "completed":
            api.update_track(c.package_name, edit, c.track, [{**r, "status": "inProgress"} if r is ours_now else r
                                                             for r in current])
            api.commit(c.package_name, edit)
            activity.heartbeat("resumed before completing")
            edit = api.insert_edit(c.package_name)
        releases = api.update_track(c.package_name, edit, c.track, wanted)
        api.commit(c.package_name, edit)
        return state_of(releases, committed=True)

    @activity.defn(name="read_play_track")
    def read_track(self, request: PlayTrackQuery) -> PlayTrackState:
        c, api = request.channel, self.api
        edit = api.insert_edit(c.package_name)
        releases = api.track(c.package_name, edit, c.track)
        api.delete_edit(c.package_name, edit)
        return state_of(releases)
