"""A loopback stand-in for App Store Connect: builds, app store versions, review submissions and
their items, release requests and phased releases, each request checked with openapi-core against
Apple's OpenAPI document (3.7.0) in `../shared/specs/apple/`, and each answer against its response
schema; objects are closed (an attribute or a query parameter the document does not list is refused:
stricter than Apple, whose document leaves objects open). Tokens are ES256 JWTs verified with the API
key's public key (`aud`, `kid`, `iss`; at most 20 minutes of life, and never expiring more than 20 minutes
after the stand-in's own clock, which may run `skew` seconds behind the worker's; the reference says
nothing of an `iat` in the future, so none is refused for it).

Its state machines follow Apple's documentation: a submitted version waits for review, is in review
after an hour and approved (`PENDING_DEVELOPER_RELEASE`) after `review_seconds`, or rejected; a
release request releases only a `PENDING_DEVELOPER_RELEASE` version and starts its phased release at
day 1; a phased release is refused for an app's first version ("not available for the first version
of an app": read here per platform — no version of the app on that platform was released before; the
reference does not say whether an app's first macOS version after iOS ones counts); the day advances
with `clock` (the test's clock — the time-skipping server's — in tests), stands still while paused,
resumes by itself after 30 days of pauses, and ends `COMPLETE` on day 7; nothing leaves `COMPLETE`.
A version's `releaseType` changes only in the states a build can still be attached in (the reference
does not say in which states Apple takes the change: the stand-in's reading); an AFTER_APPROVAL version
is released by Apple as soon as it is approved. `totalPauseDuration` is given in days here: Apple's
reference gives it as an integer with no unit, so
the channel never reads a unit into it (it measures its own pauses).
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from localcluster.stores.contracts import OpenApiContract, specs_dir
from localcluster.stores.standin import Refusal, Reply, Request, StandIn

DAY = 86_400.0
MAX_PAUSE = 30 * DAY
RELEASED = ("PROCESSING_FOR_DISTRIBUTION", "READY_FOR_DISTRIBUTION", "REPLACED_WITH_NEW_VERSION")
ISSUER = "57246542-96fe-1a63-e053-0824d011072a"


def api_key(path, key_id: str = "2X9R4HXF34") -> tuple[str, bytes]:
    """Write an App Store Connect API key (.p8, EC P-256) as Apple hands it out; (key id, public key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return key_id, key.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.000+00:00")


@dataclass
class Version:
    id: str
    app: str
    platform: str
    version: str
    state: str = "PREPARE_FOR_SUBMISSION"
    build: str = ""
    submitted: float = 0.0
    release_type: str = "MANUAL"


@dataclass
class Phased:
    id: str
    version: str
    state: str = "INACTIVE"
    started: float = 0.0
    paused_total: float = 0.0
    paused_at: float = 0.0


class AppStoreStandIn(StandIn):
    name = "app-store-connect"

    def __init__(self, key_id: str = "", public_key: bytes | None = None, review_seconds: float = 2 * DAY) -> None:
        super().__init__()
        self.contract = OpenApiContract(specs_dir() / "apple" / "app-store-connect-openapi-3.7.0.json", closed=True)
        self.skew = 0.0  # seconds the stand-in's clock runs behind the worker's
        self.accepted_seconds = 0.0  # how long an approved version stays ACCEPTED before PENDING_DEVELOPER_RELEASE
        self.key_id, self.public_key, self.review_seconds = key_id, public_key, review_seconds
        self.clock: Callable[[], float] = time.time
        self.ids = (str(n) for n in itertools.count(1_000_001))
        self.builds: list[dict] = []
        self.versions: dict[str, Version] = {}
        self.phased: dict[str, Phased] = {}
        self.submissions: dict[str, dict] = {}
        self.rejected: set[str] = set()  # version strings App Review rejects
        self.revoked_before = 0
        self.phased_history: list[tuple[str, str, int]] = []  # (state set, day then, paused days) per PATCH

    # ---- the test's levers ----------------------------------------------------------------------------

    def add_build(self, app: str, version: str, build: str, state: str = "VALID", platform: str = "IOS") -> None:
        with self.lock:
            self.builds.append({"id": next(self.ids), "app": app, "version": version, "build": build,
                                "state": state, "platform": platform, "uploaded": time.time()})

    def add_version(self, app: str, version: str, release_type: str, state: str = "PREPARE_FOR_SUBMISSION") -> None:
        """A version someone made in App Store Connect (AFTER_APPROVAL: Apple releases it once approved)."""
        with self.lock:
            v = Version(id=next(self.ids), app=app, platform="IOS", version=version, state=state,
                        release_type=release_type)
            self.versions[v.id] = v

    def add_released(self, app: str, version: str, platform: str = "IOS") -> None:
        """A version of the app released before (so the next one may be phased)."""
        with self.lock:
            v = Version(id=next(self.ids), app=app, platform=platform, version=version, state="READY_FOR_DISTRIBUTION")
            self.versions[v.id] = v

    def revoke_tokens(self) -> None:
        with self.lock:
            self.revoked_before = int(time.time())
            self.revoked += 1

    def version(self, version_string: str) -> Version:
        return next(v for v in self.versions.values() if v.version == version_string)

    def phased_of(self, version_string: str) -> Phased | None:
        v = self.version(version_string)
        return next((p for p in self.phased.values() if p.version == v.id), None)

    # ---- the clocks -----------------------------------------------------------------------------------

    def _advance(self, v: Version) -> None:
        now = self.clock()
        if v.state == "WAITING_FOR_REVIEW" and now >= v.submitted + min(3600.0, self.review_seconds / 2):
            v.state = "IN_REVIEW"
        if v.state == "IN_REVIEW" and now >= v.submitted + self.review_seconds:
            v.state = "REJECTED" if v.version in self.rejected else \
                "ACCEPTED" if self.accepted_seconds else "PENDING_DEVELOPER_RELEASE"
            if v.state != "REJECTED" and v.release_type != "MANUAL":
                v.state = "PENDING_APPLE_RELEASE"  # Apple releases it itself (after approval, or on its date)
        if v.state == "PENDING_APPLE_RELEASE" and v.release_type == "AFTER_APPROVAL":
            self._release(v)  # at once (a SCHEDULED one waits for a date the stand-in does not model)
        if v.state == "ACCEPTED" and now >= v.submitted + self.review_seconds + self.accepted_seconds:
            v.state = "PENDING_DEVELOPER_RELEASE"

    def _release(self, v: Version) -> None:
        for other in self.versions.values():
            if other.app == v.app and other.platform == v.platform and other.state == "READY_FOR_DISTRIBUTION":
                other.state = "REPLACED_WITH_NEW_VERSION"
        v.state = "READY_FOR_DISTRIBUTION"
        for p in self.phased.values():
            if p.version == v.id and p.state == "INACTIVE":
                p.state, p.started = "ACTIVE", self.clock()

    def _advanced(self, v: Version) -> Version:
        self._advance(v)
        return v

    def day(self, p: Phased) -> int:
        now = self.clock()
        if p.state == "INACTIVE":
            return 0
        if p.state == "PAUSED" and p.paused_total + (now - p.paused_at) >= MAX_PAUSE:  # Apple resumes it
            p.state, p.paused_total = "ACTIVE", MAX_PAUSE
            p.paused_at = 0.0
        paused = p.paused_total + (now - p.paused_at if p.state == "PAUSED" else 0.0)
        day = min(7, 1 + int((now - p.started - paused) // DAY))
        if day >= 7 and p.state == "ACTIVE":
            p.state = "COMPLETE"
        return 7 if p.state == "COMPLETE" else day

    # ---- dispatch -------------------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        return self.checked(self.contract, request, self.check_token, self.route)

    def check_token(self, request: Request) -> None:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, self.public_key, algorithms=["ES256"], audience="appstoreconnect-v1",
                                issuer=ISSUER, options={"require": ["iss", "iat", "exp", "aud"], "verify_exp": False,
                                                        "verify_iat": False})
        except jwt.PyJWTError as error:
            raise Refusal(401, f"Provide a properly configured and signed bearer token: {error}") from None
        now = time.time() - self.skew
        if header.get("kid") != self.key_id or claims["exp"] - claims["iat"] > 1200:
            raise Refusal(401, "The token's kid or lifetime (20 minutes at most) is not valid")
        if not now < claims["exp"] <= now + 1200:
            raise Refusal(401, "The token has expired, or expires more than 20 minutes from now")
        if claims["iat"] < self.revoked_before:
            raise Refusal(401, "The token was revoked")

    def error(self, status: int, message: str) -> dict:
        code = {401: "NOT_AUTHORIZED", 404: "NOT_FOUND", 409: "ENTITY_ERROR", 429: "RATE_LIMIT_EXCEEDED"}.get(
            status, "PARAMETER_ERROR.INVALID" if status == 400 else "ERROR")
        return {"errors": [{"status": str(status), "code": code, "title": message.split(":")[0], "detail": message}]}

    def route(self, request: Request) -> Reply:
        m, path = request.method, request.path
        query = {k: v[-1] for k, v in parse_qs(request.query).items()}
        body = request.json() if request.body else {}
        links = {"self": f"{self.url}{path}"}
        if m == "GET" and path == "/v1/builds":
            found = [b for b in self.builds if b["app"] == query.get("filter[app]")
                     and b["build"] == query.get("filter[version]", b["build"])
                     and b["version"] == query.get("filter[preReleaseVersion.version]", b["version"])]
            return Reply(200, {"data": [self.build_resource(b) for b in found], "links": links})
        if found := re.fullmatch(r"/v1/apps/(\w+)/appStoreVersions", path):
            states = query.get("filter[appVersionState]")
            rows = [v for v in self.versions.values() if v.app == found.group(1)
                    and v.version in query.get("filter[versionString]", v.version).split(",")
                    and v.platform in query.get("filter[platform]", v.platform).split(",")
                    and (states is None or self._advanced(v).state in states.split(","))]
            rows = rows[:int(query.get("limit", 50))]
            return Reply(200, {"data": [self.version_resource(v) for v in rows], "links": links})
        if m == "POST" and path == "/v1/appStoreVersions":
            return self.create_version(body["data"], links)
        if found := re.fullmatch(r"/v1/appStoreVersions/(\w+)(/.*)?", path):
            v = self.versions.get(found.group(1))
            if v is None:
                raise Refusal(404, f"There is no appStoreVersions resource with id {found.group(1)}")
            return self.version_call(m, found.group(2) or "", v, body, links)
        if m == "POST" and path == "/v1/appStoreVersionPhasedReleases":
            vid = body["data"]["relationships"]["appStoreVersion"]["data"]["id"]
            if any(p.version == vid for p in self.phased.values()):
                raise Refusal(409, "The version already has a phased release")
            v = self.versions[vid]
            if not any(o.app == v.app and o.platform == v.platform and o.id != v.id and o.state in RELEASED
                       for o in self.versions.values()):
                raise Refusal(409, "appStoreVersionPhasedReleases is not available for the first version of an app")
            p = Phased(id=next(self.ids), version=vid)
            self.phased[p.id] = p
            return Reply(201, {"data": self.phased_resource(p), "links": links})
        if found := re.fullmatch(r"/v1/appStoreVersionPhasedReleases/(\w+)", path):
            return self.patch_phased(found.group(1), body["data"]["attributes"]["phasedReleaseState"], links)
        if path == "/v1/reviewSubmissions":
            return self.submissions_call(m, query, body, links)
        if found := re.fullmatch(r"/v1/reviewSubmissions/(\w+)", path):
            return self.submit(found.group(1), body["data"].get("attributes", {}), links)
        if m == "POST" and path == "/v1/reviewSubmissionItems":
            rel = body["data"]["relationships"]
            submission, vid = rel["reviewSubmission"]["data"]["id"], rel["appStoreVersion"]["data"]["id"]
            if any(vid in s["items"] for s in self.submissions.values()):
                raise Refusal(409, "The appStoreVersion is already in a review submission")
            self.submissions[submission]["items"].append(vid)
            return Reply(201, {"data": {"type": "reviewSubmissionItems", "id": next(self.ids),
                                        "attributes": {"state": "READY_FOR_REVIEW"}}, "links": links})
        if m == "POST" and path == "/v1/appStoreVersionReleaseRequests":
            v = self.versions[body["data"]["relationships"]["appStoreVersion"]["data"]["id"]]
            self._advance(v)
            if v.state != "PENDING_DEVELOPER_RELEASE":
                raise Refusal(409, f"The version is {v.state}: only an approved version can be released")
            self._release(v)
            return Reply(201, {"data": {"type": "appStoreVersionReleaseRequests", "id": next(self.ids)},
                               "links": links})
        raise Refusal(404, f"The stand-in has no {m} {path}")

    # ---- resources ------------------------------------------------------------------------------------

    def build_resource(self, b: dict) -> dict:
        return {"type": "builds", "id": b["id"], "attributes": {
            "version": b["build"], "processingState": b["state"], "uploadedDate": _iso(b["uploaded"])}}

    def version_resource(self, v: Version) -> dict:
        self._advance(v)
        legacy = {"READY_FOR_DISTRIBUTION": "READY_FOR_SALE"}.get(v.state, v.state)
        return {"type": "appStoreVersions", "id": v.id, "attributes": {
            "platform": v.platform, "versionString": v.version, "appVersionState": v.state,
            "appStoreState": legacy, "releaseType": v.release_type}}

    def phased_resource(self, p: Phased) -> dict:
        day = self.day(p)
        paused = p.paused_total + (self.clock() - p.paused_at if p.state == "PAUSED" else 0.0)
        attributes = {"phasedReleaseState": p.state, "currentDayNumber": day, "totalPauseDuration": int(paused // DAY)}
        if p.started:
            attributes["startDate"] = _iso(p.started)
        return {"type": "appStoreVersionPhasedReleases", "id": p.id, "attributes": attributes}

    # ---- calls ----------------------------------------------------------------------------------------

    def create_version(self, data: dict, links: dict) -> Reply:
        app = data["relationships"]["app"]["data"]["id"]
        a = data["attributes"]
        if any(v.app == app and v.version == a["versionString"] and v.platform == a["platform"]
               for v in self.versions.values()):
            raise Refusal(409, f"An appStoreVersion {a['versionString']} already exists")
        v = Version(id=next(self.ids), app=app, platform=a["platform"], version=a["versionString"])
        self.versions[v.id] = v
        return Reply(201, {"data": self.version_resource(v), "links": links})

    def version_call(self, m: str, rest: str, v: Version, body: dict, links: dict) -> Reply:
        if m == "GET" and rest == "":
            return Reply(200, {"data": self.version_resource(v), "links": links})
        if m == "PATCH" and rest == "":
            if v.state not in ("PREPARE_FOR_SUBMISSION", "REJECTED", "DEVELOPER_REJECTED", "METADATA_REJECTED"):
                raise Refusal(409, f"A version in {v.state} cannot be changed")
            v.release_type = body["data"].get("attributes", {}).get("releaseType", v.release_type)
            return Reply(200, {"data": self.version_resource(v), "links": links})
        if m == "PATCH" and rest == "/relationships/build":
            if v.state not in ("PREPARE_FOR_SUBMISSION", "REJECTED", "DEVELOPER_REJECTED", "METADATA_REJECTED"):
                raise Refusal(409, f"The build of a version in {v.state} cannot change")
            v.build = body["data"]["id"]
            return Reply(204)
        if m == "GET" and rest == "/appStoreVersionPhasedRelease":
            p = next((p for p in self.phased.values() if p.version == v.id), None)
            if p is None:
                raise Refusal(404, "The version has no phased release")
            return Reply(200, {"data": self.phased_resource(p), "links": links})
        raise Refusal(404, f"The stand-in has no {m} appStoreVersions{rest}")

    def patch_phased(self, pid: str, wanted: str, links: dict) -> Reply:
        p = self.phased.get(pid)
        if p is None:
            raise Refusal(404, f"There is no appStoreVersionPhasedReleases resource with id {pid}")
        day, now = self.day(p), self.clock()
        allowed = {"ACTIVE": ("PAUSED", "COMPLETE"), "PAUSED": ("ACTIVE", "COMPLETE")}.get(p.state, ())
        if wanted != p.state and wanted not in allowed:
            raise Refusal(409, f"A phased release that is {p.state} cannot become {wanted}")
        if wanted == "PAUSED" and p.state == "ACTIVE":
            p.paused_at = now
        if wanted != "PAUSED" and p.state == "PAUSED":
            p.paused_total = min(MAX_PAUSE, p.paused_total + now - p.paused_at)
        p.state = wanted
        self.phased_history.append((wanted, day, int(p.paused_total // DAY)))
        return Reply(200, {"data": self.phased_resource(p), "links": links})

    def submissions_call(self, m: str, query: dict, body: dict, links: dict) -> Reply:
        if m == "GET":
            rows = [s for s in self.submissions.values() if s["app"] == query.get("filter[app]")
                    and s["state"] in query.get("filter[state]", s["state"]).split(",")]
            return Reply(200, {"data": [self.submission_resource(s) for s in rows], "links": links})
        app = body["data"]["relationships"]["app"]["data"]["id"]
        s = {"id": next(self.ids), "app": app, "platform": body["data"]["attributes"]["platform"],
             "state": "READY_FOR_REVIEW", "items": [], "submitted": 0.0}
        self.submissions[s["id"]] = s
        return Reply(201, {"data": self.submission_resource(s), "links": links})

    def submit(self, sid: str, attributes: dict, links: dict) -> Reply:
        s = self.submissions.get(sid)
        if s is None:
            raise Refusal(404, f"There is no reviewSubmissions resource with id {sid}")
        if attributes.get("submitted") and s["state"] == "READY_FOR_REVIEW":
            if not s["items"]:
                raise Refusal(409, "A review submission needs at least one item")
            s["state"], s["submitted"] = "WAITING_FOR_REVIEW", self.clock()
            for vid in s["items"]:
                self.versions[vid].state, self.versions[vid].submitted = "WAITING_FOR_REVIEW", s["submitted"]
        return Reply(200, {"data": self.submission_resource(s), "links": links})

    def submission_resource(self, s: dict) -> dict:
        attributes = {"platform": s["platform"], "state": s["state"]}
        if s["submitted"]:
            attributes["submittedDate"] = _iso(s["submitted"])
        return {"type": "reviewSubmissions", "id": s["id"], "attributes": attributes}
