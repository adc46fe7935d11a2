"""A loopback stand-in for Google Play: the service-account token endpoint (the JWT-bearer grant,
verified with the account's public key), the Developer API's edits, bundle uploads (simple and
resumable), tracks and commits, and the Reporting API's crash and ANR rates. Every API request is
checked against the discovery documents in `../shared/specs/google/`, and every answer against the
response schema.

The state machine is the one Play's docs describe: an edit is a working copy committed at once; a
version code is used once (a second upload of it is refused); a track has at most one staged
(`inProgress` or `halted`) release, whose `userFraction` is in (0, 1) and only there; a halted release
is not completed without resuming it first; a release names only uploaded version codes.
A bundle's version code is read from `base/manifest/AndroidManifest.xml` in the zip (as text here;
Play reads the compiled manifest).

Stricter than Google where its references allow it: a token works only for the scopes it was granted
(androidpublisher for the Developer API, playdeveloperreporting for the Reporting API; a token the test
makes with `issue_token` has both); a resumable chunk other than the last is a multiple of 256 KiB; a
commit Play "cannot send for review automatically" (`needs_manual_review`) is refused unless
`changesNotSentForReview=true`, and then its track changes are not served (not live) until
`send_for_review` — the reference does not say what `tracks.get` shows of them meanwhile; here, the live
tracks; it keeps one snapshot of unsent tracks, which a later unsent commit replaces (Google adds unsent
changes up; the channel never commits unsent). A track may hold several drafts here: the reference does not say how many Play allows. The Reporting API's own rules: DAILY timelines in America/Los_Angeles dates (no hours), ending
no later than the metric set's `freshnessInfo` (`fresh_until`, answered by `vitals.*.get`), metrics of
the queried set only, rows paged (`page_rows` a page; `pageToken` valid only for the same query).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import re
import secrets
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from localcluster.stores.contracts import ContractError, DiscoveryContract, specs_dir
from localcluster.stores.playreporting import Reporting
from localcluster.stores.standin import Refusal, Reply, Request, StandIn, Violation

SCOPE = "https://www.googleapis.com/auth/androidpublisher"
REPORTING_SCOPE = "https://www.googleapis.com/auth/playdeveloperreporting"
TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # what Google's token endpoint wants in `aud`
STAGED = ("inProgress", "halted")
RESUMABLE_UNIT = 256 * 1024
NOT_FOR_REVIEW = ("Changes cannot be sent for review automatically. Please set the query parameter "
                  "changesNotSentForReview to true. Once committed, the changes in this edit can be sent for review "
                  "from the Google Play Console UI.")


def service_account(path: Path, token_uri: str, email: str = "release@durable-rollouts.iam.gserviceaccount.com") -> bytes:
    """Write a service-account key file as the Google Cloud console gives it; returns the public key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "durable-rollouts", "private_key_id": secrets.token_hex(20),
        "private_key": pem.decode(), "client_email": email, "client_id": "1" * 21, "token_uri": token_uri}))
    path.chmod(0o600)
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def make_bundle(path: Path, version_code: int, size: int = 300_000) -> Path:
    """An .aab-shaped zip whose manifest names `version_code` (and `size` bytes of incompressible payload)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("base/manifest/AndroidManifest.xml", f'<manifest versionCode="{version_code}"/>')
        z.writestr("base/dex/classes.dex", secrets.token_bytes(size))
    return path


def version_code_of(content: bytes) -> int:
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as z:
            manifest = z.read("base/manifest/AndroidManifest.xml").decode()
    except (zipfile.BadZipFile, KeyError) as error:
        raise Refusal(400, f"The bundle is not a valid Android App Bundle ({error})") from None
    found = re.search(r'versionCode="(\d+)"', manifest)
    if not found:
        raise Refusal(400, "The bundle's manifest has no versionCode")
    return int(found.group(1))


@dataclass
class App:
    bundles: dict[int, dict] = field(default_factory=dict)  # versionCode -> Bundle
    tracks: dict[str, list[dict]] = field(default_factory=dict)  # track -> releases
    commits: int = 0
    pending_review: dict[str, list[dict]] | None = None  # tracks committed unsent, not served


@dataclass
class Edit:
    package: str
    bundles: dict[int, dict]
    tracks: dict[str, list[dict]]
    expires: float


@dataclass
class Session:
    edit: str
    package: str
    total: int
    data: bytearray = field(default_factory=bytearray)


class PlayStandIn(Reporting, StandIn):
    name = "google-play"

    def __init__(self, public_key: bytes | None = None) -> None:
        super().__init__()
        self.public_key = public_key
        specs = specs_dir() / "google"
        self.publisher = DiscoveryContract(specs / "androidpublisher.v3.json")
        self.reporting = DiscoveryContract(specs / "playdeveloperreporting.v1beta1.json")
        self.apps: dict[str, App] = {}
        self.edits: dict[str, Edit] = {}
        self.sessions: dict[str, Session] = {}
        self.uploads: list[int] = []  # version codes of every completed upload
        self.received = 0  # bytes of bundles received (a repeated byte counts twice)
        self.chunk_delay = 0.0  # seconds each resumable chunk takes (a slow link, to kill a worker mid-upload)
        self.history: list[tuple[str, dict[str, list[dict]]]] = []  # (package, tracks) at every commit
        self.vitals: dict[str, dict[int, dict[str, float]]] = {}  # package -> versionCode -> metric -> value
        self.scopes: dict[str, set[str]] = {}  # token -> the scopes it was granted
        self.needs_manual_review: set[str] = set()  # packages whose changes Play will not send for review itself
        self.unsent: list[str] = []  # edits committed with changesNotSentForReview=true
        self.fresh_until: dict[str, tuple[int, int, int] | None] = {}  # package -> the (exclusive) end of daily data
        self.page_rows = 1000  # rows in a page of a vitals query

    def seed(self, package: str, version_code: int, track: str = "production") -> None:
        """An app already on Play: `version_code` uploaded and completed on `track`."""
        with self.lock:
            app = self.app(package)
            app.bundles[version_code] = {"versionCode": version_code, "sha1": "0" * 40, "sha256": "0" * 64}
            app.tracks[track] = [{"status": "completed", "versionCodes": [str(version_code)], "name": "seed"}]

    def send_for_review(self, package: str) -> None:
        """Someone sends the changes committed unsent for review in the Play Console (approved at once)."""
        with self.lock:
            app = self.app(package)
            if app.pending_review is not None:
                app.tracks, app.pending_review = app.pending_review, None
                app.commits += 1
                self.history.append((package, copy.deepcopy(app.tracks)))

    def issue_token(self) -> str:
        token = super().issue_token()
        self.scopes[token] = {SCOPE, REPORTING_SCOPE}
        return token

    def track_history(self, package: str, track: str = "production") -> list[list[tuple]]:
        """The track's releases after each commit that changed it: [(status, fraction, codes), ...]."""
        shapes, last = [], None
        for name, tracks in self.history:
            if name != package:
                continue
            shape = [(r["status"], r.get("userFraction"), tuple(int(c) for c in r.get("versionCodes", [])))
                     for r in tracks.get(track, [])]
            if shape != last:
                shapes.append(shape)
            last = shape
        return shapes

    def app(self, package: str) -> App:
        return self.apps.setdefault(package, App())

    def track(self, package: str, track: str) -> list[dict]:
        return copy.deepcopy(self.app(package).tracks.get(track, []))

    # ---- dispatch -------------------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        if request.path == "/token":
            return self.token(request)
        if "upload_id=" in request.query and request.method == "PUT":
            return self.resume_upload(request)
        contract = self.reporting if request.path.startswith("/v1beta1/") else self.publisher
        try:
            method = contract.check_request(request.method, request.path, request.query, request.body,
                                            request.content_type)
        except ContractError as error:
            raise Violation(str(error)) from None
        if not self.authorized(request):
            raise Refusal(401, "Request had invalid authentication credentials.")
        wanted = REPORTING_SCOPE if contract is self.reporting else SCOPE
        if wanted not in self.scopes.get(request.headers["authorization"][7:], set()):
            raise Refusal(403, "Request had insufficient authentication scopes.")
        reply, schema = self.call(method, request)
        if schema and reply.status < 300:
            try:
                contract.check_schema(schema, reply.body, "the stand-in's answer")
            except ContractError as error:
                self.violations.append(str(error))
        return reply

    def token(self, request: Request) -> Reply:
        form = {k: v[-1] for k, v in parse_qs(request.body.decode()).items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return Reply(400, {"error": "unsupported_grant_type", "error_description": "grant_type"})
        try:
            claims = jwt.decode(form.get("assertion", ""), self.public_key, algorithms=["RS256"],
                                audience=TOKEN_AUDIENCE, options={"require": ["iss", "aud", "exp", "iat"]})
        except jwt.PyJWTError as error:
            return Reply(400, {"error": "invalid_grant", "error_description": f"Invalid JWT: {error}"})
        if claims["exp"] - claims["iat"] > 3600:
            return Reply(400, {"error": "invalid_grant", "error_description": "JWT lifetime over an hour"})
        if not set(claims.get("scope", "").split()) & {SCOPE, REPORTING_SCOPE}:
            return Reply(400, {"error": "invalid_scope", "error_description": claims.get("scope", "")})
        token = self.issue_token()
        self.scopes[token] = set(claims.get("scope", "").split())
        return Reply(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def call(self, method: str, request: Request) -> tuple[Reply, str | None]:
        parts = request.path.split("/")
        if method.startswith("playdeveloperreporting."):
            kind = "Anr" if "anrrate" in method else "Crash"
            if method.endswith(".get"):
                return self.metric_set(parts[3], parts[4]), f"GooglePlayDeveloperReportingV1beta1{kind}RateMetricSet"
            return self.vitals_query(parts[3], parts[4].split(":")[0], request.json()), \
                f"GooglePlayDeveloperReportingV1beta1Query{kind}RateMetricSetResponse"
        package = parts[parts.index("applications") + 1]
        edit_id = parts[parts.index("edits") + 1].split(":")[0] if len(parts) > parts.index("edits") + 1 else ""
        verb = method.removeprefix("androidpublisher.edits.")
        if verb == "insert":
            edit_id = secrets.token_hex(8)
            app = self.app(package)
            self.edits[edit_id] = Edit(package, dict(app.bundles), copy.deepcopy(app.tracks), time.time() + 3600)
            return Reply(200, {"id": edit_id, "expiryTimeSeconds": str(int(time.time() + 3600))}), "AppEdit"
        edit = self.edits.get(edit_id)
        if edit is None or edit.package != package:
            raise Refusal(404, f"Edit {edit_id} not found (it was committed, deleted or never made)")
        if verb == "get":
            return Reply(200, {"id": edit_id, "expiryTimeSeconds": str(int(edit.expires))}), "AppEdit"
        if verb == "delete":
            del self.edits[edit_id]
            return Reply(204), None
        if verb == "commit":
            unsent = parse_qs(request.query).get("changesNotSentForReview", ["false"])[-1] == "true"
            if package in self.needs_manual_review and not unsent:
                raise Refusal(400, NOT_FOR_REVIEW)
            app = self.app(package)
            app.bundles.update(edit.bundles)
            if unsent:  # committed, served to nobody until someone sends it for review in the Play Console
                self.unsent.append(edit_id)
                app.pending_review = edit.tracks
                del self.edits[edit_id]
                return Reply(200, {"id": edit_id}), "AppEdit"
            app.tracks = edit.tracks
            app.commits += 1
            self.history.append((package, copy.deepcopy(edit.tracks)))
            del self.edits[edit_id]
            return Reply(200, {"id": edit_id}), "AppEdit"
        if verb == "bundles.list":
            return Reply(200, {"kind": "androidpublisher#bundlesListResponse",
                               "bundles": sorted(edit.bundles.values(), key=lambda b: b["versionCode"])}), \
                "BundlesListResponse"
        if verb == "bundles.upload":
            if "uploadType=resumable" in request.query:
                upload_id = secrets.token_hex(8)
                total = int(request.headers.get("x-upload-content-length") or 0)
                self.sessions[upload_id] = Session(edit_id, package, total)
                return Reply(200, None, {"location": f"{self.url}{request.path}?uploadType=resumable&upload_id={upload_id}"}), None
            self.received += len(request.body)
            return Reply(200, self.add_bundle(edit, request.body)), "Bundle"
        if verb in ("tracks.get", "tracks.list"):
            if verb == "tracks.list":
                return Reply(200, {"kind": "androidpublisher#tracksListResponse", "tracks": [
                    {"track": t, "releases": r} for t, r in sorted(edit.tracks.items())]}), "TracksListResponse"
            name = parts[-1]
            return Reply(200, {"track": name, "releases": edit.tracks.get(name, [])}), "Track"
        if verb in ("tracks.update", "tracks.patch"):
            name, body = parts[-1], request.json()
            self.check_track(package, edit, name, body.get("releases", []))
            edit.tracks[name] = body.get("releases", [])
            return Reply(200, {"track": name, "releases": edit.tracks[name]}), "Track"
        raise Refusal(501, f"{method} is not implemented by the stand-in")

    # ---- bundles --------------------------------------------------------------------------------------

    def add_bundle(self, edit: Edit, content: bytes) -> dict:
        code = version_code_of(content)
        if code in edit.bundles:
            raise Refusal(403, f"APK specifies a version code that has already been used: {code}.")
        bundle = {"versionCode": code, "sha1": hashlib.sha1(content).hexdigest(),  # noqa: S324 - Play's field
                  "sha256": hashlib.sha256(content).hexdigest()}
        edit.bundles[code] = bundle
        self.uploads.append(code)
        return bundle

    def resume_upload(self, request: Request) -> Reply:
        upload_id = parse_qs(request.query)["upload_id"][0]
        session = self.sessions.get(upload_id)
        if session is None:
            raise Refusal(404, "No such upload session")
        if not self.authorized(request):
            raise Refusal(401, "Request had invalid authentication credentials.")
        found = re.fullmatch(r"bytes (?:(\d+)-(\d+)|\*)/(\d+)", request.headers.get("content-range", ""))
        if not found:
            raise Violation(f"resumable upload: Content-Range {request.headers.get('content-range')!r}")
        session.total = int(found.group(3))
        if found.group(1) is not None:
            start = int(found.group(1))
            last = int(found.group(2)) + 1 == int(found.group(3))
            if not last and len(request.body) % RESUMABLE_UNIT:
                raise Violation(f"resumable upload: a chunk of {len(request.body)} bytes, not a multiple of 256 KiB "
                                "(only the last may be shorter)")
            if start != len(session.data):
                raise Refusal(400, f"Content-Range starts at {start}, the session has {len(session.data)} bytes")
            session.data += request.body
            self.received += len(request.body)
            if self.chunk_delay:
                self.lock.release()  # a slow link: other calls go on meanwhile
                try:
                    time.sleep(self.chunk_delay)
                finally:
                    self.lock.acquire()
        if len(session.data) < session.total:
            headers = {"range": f"bytes=0-{len(session.data) - 1}"} if session.data else {}
            return Reply(308, None, headers)
        edit = self.edits.get(session.edit)
        if edit is None:
            raise Refusal(404, f"Edit {session.edit} not found")
        del self.sessions[upload_id]
        return Reply(200, self.add_bundle(edit, bytes(session.data)))

    # ---- tracks ---------------------------------------------------------------------------------------

    def check_track(self, package: str, edit: Edit, name: str, releases: list[dict]) -> None:
        staged = [r for r in releases if r.get("status") in STAGED]
        if len(staged) > 1:
            raise Refusal(400, "A track can have only one release in progress or halted.")
        committed = {int(code): r["status"] for r in self.app(package).tracks.get(name, [])
                     for code in r.get("versionCodes", [])}
        for release in releases:
            status, fraction = release.get("status"), release.get("userFraction")
            if status in STAGED and (fraction is None or not 0 < fraction < 1):
                raise Refusal(400, f"Release status {status} requires a user fraction in (0, 1), got {fraction}.")
            if status not in STAGED and fraction is not None:
                raise Refusal(400, f"A user fraction can only be set for inProgress or halted releases, not {status}.")
            codes = [int(c) for c in release.get("versionCodes", [])]
            if not codes and status != "draft":
                raise Refusal(400, "A release needs at least one version code.")
            for code in codes:
                if code not in edit.bundles:
                    raise Refusal(400, f"Version code {code} has not been uploaded.")
                if status == "completed" and committed.get(code) == "halted":
                    raise Refusal(400, f"A halted release ({code}) cannot be completed: resume it first (inProgress).")
