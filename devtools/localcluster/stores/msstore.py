"""A loopback (HTTPS) stand-in for the Microsoft Store submission API (Partner Center) and Azure AD.

Microsoft publishes no machine-readable description of this API, so the request bodies are checked
with jsonschema against `SUBMISSION`, transcribed field by field from the reference ("App submission
resource", "Flight submission resource", "Package delivery options", "Gradual package rollout"): the
top-level fields, the package fields with their `fileStatus` values, `packageRollout`'s four fields;
unknown fields are refused. The paths and methods are the reference's; `percentage` must be a number
in 0-100 that only grows.

State machine: one pending submission per app or flight; a commit starts CommitStarted →
PreProcessing → Certification → Published over `certification_seconds` of `clock` (PendingPublication
instead when the submission's `targetPublishMode` is Manual, or `held` says someone set it so in Partner
Center, until `held` is cleared: published there; the reference does not say when PendingPublication
occurs; a PUT that does not state `targetPublishMode` is a violation here); a commit whose
blob is missing a package it names fails (CommitFailed); a published submission's package rollout is
InProgress until finalized (Complete) or halted (Stopped: final); a new submission is refused while the
last published one's rollout is in progress. The package goes to the submission's blob through
`azureblob.BlobService` (Put Blob at most 64 MiB at the links' SAS version; blocks; block lists).
"""

from __future__ import annotations

import copy
import io
import itertools
import re
import time
import zipfile
from collections.abc import Callable
from urllib.parse import parse_qs

import jsonschema

from localcluster.stores.azuread import TENANT, azure_ad
from localcluster.stores.azureblob import BlobService
from localcluster.stores.standin import Refusal, Reply, Request, StandIn, Violation

SCOPE = "https://manage.devcenter.microsoft.com/.default"
ROLLOUT_STATES = ["PackageRolloutNotStarted", "PackageRolloutInProgress", "PackageRolloutComplete",
                  "PackageRolloutStopped"]
_PACKAGE = {"type": "object", "additionalProperties": False, "properties": {
    "fileName": {"type": "string"}, "fileStatus": {"enum": ["None", "PendingUpload", "Uploaded", "PendingDelete"]},
    "id": {"type": "string"}, "version": {"type": "string"}, "architecture": {"type": "string"},
    "languages": {"type": "array", "items": {"type": "string"}},
    "capabilities": {"type": "array", "items": {"type": "string"}},
    "minimumDirectXVersion": {"enum": ["None", "DirectX93", "DirectX100"]},
    "minimumSystemRam": {"enum": ["None", "Memory2GB"]},
    "targetDeviceFamilies": {"type": "array", "items": {"type": "string"}}},
    "required": ["fileName", "fileStatus"]}
_DELIVERY = {"type": "object", "additionalProperties": False, "properties": {
    "packageRollout": {"type": "object", "additionalProperties": False, "properties": {
        "isPackageRollout": {"type": "boolean"},
        "packageRolloutPercentage": {"type": "number", "minimum": 0, "maximum": 100},
        "packageRolloutStatus": {"enum": ROLLOUT_STATES}, "fallbackSubmissionId": {"type": "string"}}},
    "isMandatoryUpdate": {"type": "boolean"}, "mandatoryUpdateEffectiveDate": {"type": "string"}}}
_COMMON = {"id": {"type": "string"}, "status": {"type": "string"}, "statusDetails": {"type": "object"},
           "fileUploadUrl": {"type": "string"}, "targetPublishMode": {"enum": ["Immediate", "Manual", "SpecificDate"]},
           "targetPublishDate": {"type": "string"}, "notesForCertification": {"type": "string"},
           "packageDeliveryOptions": _DELIVERY}
SUBMISSION = {"type": "object", "additionalProperties": False, "properties": {
    **_COMMON, "applicationPackages": {"type": "array", "items": _PACKAGE},
    "applicationCategory": {"type": "string"}, "pricing": {"type": "object"}, "visibility": {"type": "string"},
    "listings": {"type": "object"}, "hardwarePreferences": {"type": "array"},
    "automaticBackupEnabled": {"type": "boolean"}, "canInstallOnRemovableMedia": {"type": "boolean"},
    "isGameDvrEnabled": {"type": "boolean"}, "gamingOptions": {"type": "array"},
    "hasExternalInAppProducts": {"type": "boolean"}, "meetAccessibilityGuidelines": {"type": "boolean"},
    "enterpriseLicensing": {"type": "string"}, "friendlyName": {"type": "string"}, "trailers": {"type": "array"},
    "allowMicrosoftDecideAppAvailabilityToFutureDeviceFamilies": {"type": "boolean"},
    "allowTargetFutureDeviceFamilies": {"type": "object"}}}
FLIGHT_SUBMISSION = {"type": "object", "additionalProperties": False, "properties": {
    **_COMMON, "flightPackages": {"type": "array", "items": _PACKAGE}}}
STEPS = ("CommitStarted", "PreProcessing", "Certification", "Published")


class MicrosoftStoreStandIn(StandIn):
    name = "microsoft-store"

    def __init__(self, clients: dict[str, str], certification_seconds: float = 3 * 3600) -> None:
        super().__init__()
        self.clients, self.certification_seconds = clients, certification_seconds
        self.clock: Callable[[], float] = time.time
        self.ids = (str(n) for n in itertools.count(1152921504606847000))
        self.apps: dict[str, dict] = {}  # app or flight path → {"published": id, "pending": id}
        self.submissions: dict[str, dict] = {}
        self.storage = BlobService()
        self.rollout_calls: list[tuple[str, str]] = []  # (operation, percentage) in order
        self.held = False  # someone set the pending submission's targetPublishMode to Manual in Partner Center

    @property
    def uploads(self) -> int:
        """Blobs committed (a Put Blob or a Put Block List)."""
        return sum(1 for operation, _ in self.storage.puts if operation in ("blob", "blocklist"))

    def seed(self, application: str, flight: str | None = None, packages: tuple[tuple[str, str], ...] = (
            ("Shop_1.0.0.0_x64.msixupload", "x64"),), mode: str = "Immediate") -> None:
        """An app (or flight) with one published submission, everyone on `packages` ((file, architecture))."""
        with self.lock:
            key = self.key(application, flight)
            sid = next(self.ids)
            self.submissions[sid] = {"resource": {"id": sid, "status": "Published", "targetPublishMode": mode,
                                                  self.packages_key(flight): [
                {"fileName": name, "fileStatus": "Uploaded", "architecture": arch, "minimumDirectXVersion": "None",
                 "minimumSystemRam": "None"} for name, arch in packages]},
                "rollout": {"isPackageRollout": False, "packageRolloutPercentage": 100.0,
                                                            "packageRolloutStatus": "PackageRolloutComplete",
                                                            "fallbackSubmissionId": "0"},
                "committed": 0.0, "key": key}
            self.apps[key] = {"published": sid, "pending": None}

    @staticmethod
    def key(application: str, flight: str | None) -> str:
        return f"{application}/flights/{flight}" if flight else application

    @staticmethod
    def packages_key(flight: str | None) -> str:
        return "flightPackages" if flight else "applicationPackages"

    # ---- dispatch -------------------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        if request.path.startswith(f"/{TENANT}/"):
            return azure_ad(self, request, self.clients, {SCOPE}) or Reply(404)
        if request.path.startswith("/blobs/"):
            return self.blob(request)
        if not self.authorized(request):
            raise Refusal(401, "Unauthorized: the access token is missing, expired or revoked")
        found = re.fullmatch(r"/v1\.0/my/applications/(\w{12})(?:/flights/([0-9a-f-]{36}))?"
                             r"(?:/submissions(?:/(\d+)(?:/(\w+))?)?)?", request.path)
        if not found:
            raise Violation(f"{request.method} {request.path}: not a path of the submission API")
        app, flight, sid, verb = found.groups()
        key = self.key(app, flight)
        if key not in self.apps:
            raise Refusal(404, f"No application or flight {key}")
        if sid is None:
            if request.path.endswith("/submissions"):
                if request.method != "POST":
                    raise Violation(f"{request.method} {request.path}: the API lists no submissions here")
                return self.create(key, flight)
            if request.method != "GET":
                raise Violation(f"{request.method} {request.path}: an application is only read")
            return Reply(200, self.resource(app, flight))
        submission = self.submissions.get(sid)
        if submission is None or submission["key"] != key:
            raise Refusal(404, f"No submission {sid} of {key}")
        return self.submission_call(request, key, flight, sid, submission, verb)

    def error(self, status: int, message: str) -> dict:
        return {"code": {400: "InvalidParameterValue", 401: "Unauthorized", 404: "NotFound",
                         409: "InvalidState"}.get(status, "InternalError"), "message": message, "source": "Ingestion Api"}

    # ---- resources ------------------------------------------------------------------------------------

    def resource(self, app: str, flight: str | None) -> dict:
        state = self.apps[self.key(app, flight)]

        def ref(sid: str | None) -> dict | None:
            return {"id": sid, "resourceLocation": f"submissions/{sid}"} if sid else None

        if flight:
            return {"flightId": flight, "friendlyName": "insiders", "lastPublishedFlightSubmission": ref(state["published"]),
                    "pendingFlightSubmission": ref(state["pending"])}
        return {"id": app, "primaryName": "Shop", "lastPublishedApplicationSubmission": ref(state["published"]),
                "pendingApplicationSubmission": ref(state["pending"])}

    def view(self, sid: str) -> dict:
        s = self.submissions[sid]
        self.advance(s)
        body = copy.deepcopy(s["resource"])
        body.setdefault("packageDeliveryOptions", {})["packageRollout"] = dict(s["rollout"])
        return body

    def advance(self, s: dict) -> None:
        status = s["resource"]["status"]
        if (status not in STEPS[:-1] and status != "PendingPublication") or not s["committed"]:
            return
        elapsed = self.clock() - s["committed"]
        step = 3 if elapsed >= self.certification_seconds else 2 if elapsed >= 120 else 1 if elapsed >= 60 else 0
        manual = self.held or s["resource"].get("targetPublishMode") == "Manual"
        if STEPS[step] == "Published" and manual:
            s["resource"]["status"] = "PendingPublication"  # certified; waits for someone in Partner Center
            return
        if STEPS[step] == "Published" and status != "Published":
            state = self.apps[s["key"]]
            s["rollout"]["fallbackSubmissionId"] = state["published"] or "0"
            if s["rollout"].get("isPackageRollout"):
                s["rollout"]["packageRolloutStatus"] = "PackageRolloutInProgress"
            state["published"], state["pending"] = s["resource"]["id"], None
        s["resource"]["status"] = STEPS[step]

    # ---- calls ----------------------------------------------------------------------------------------

    def create(self, key: str, flight: str | None) -> Reply:
        state = self.apps[key]
        if state["pending"]:
            raise Refusal(409, f"A pending submission ({state['pending']}) already exists")
        published = self.submissions[state["published"]]
        self.advance(published)
        if published["rollout"].get("packageRolloutStatus") == "PackageRolloutInProgress":
            raise Refusal(409, "The last published submission's package rollout is in progress: finalize or halt it")
        sid = next(self.ids)
        resource = {**{k: v for k, v in published["resource"].items() if k not in ("statusDetails",)},
                    "id": sid, "status": "PendingCommit", "fileUploadUrl": self.storage.link(self.url, sid)}
        self.submissions[sid] = {"resource": resource, "rollout": {
            "isPackageRollout": False, "packageRolloutPercentage": 0.0, "packageRolloutStatus": "PackageRolloutNotStarted",
            "fallbackSubmissionId": "0"}, "committed": 0.0, "key": key}
        state["pending"] = sid
        return Reply(201, self.view(sid))

    def submission_call(self, request: Request, key: str, flight: str | None, sid: str, s: dict,
                        verb: str | None) -> Reply:
        m, status = request.method, s["resource"]["status"]
        if verb is None and m == "GET":
            return Reply(200, self.view(sid))
        if verb is None and m == "PUT":
            body = request.json()
            errors = sorted(jsonschema.Draft202012Validator(FLIGHT_SUBMISSION if flight else SUBMISSION)
                            .iter_errors(body), key=lambda e: list(e.absolute_path))
            if errors:
                where = ".".join(str(p) for p in errors[0].absolute_path) or "(body)"
                raise Violation(f"PUT submission: {where}: {errors[0].message}")
            if "targetPublishMode" not in body:
                raise Violation("PUT submission: targetPublishMode not stated (the published submission's would apply)")
            if status != "PendingCommit":
                raise Refusal(409, f"Submission {sid} is {status}: only a PendingCommit submission can be updated")
            rollout = (body.get("packageDeliveryOptions") or {}).get("packageRollout") or {}
            s["resource"] = {**body, "id": sid, "status": status, "fileUploadUrl": s["resource"]["fileUploadUrl"]}
            s["rollout"].update({k: rollout[k] for k in ("isPackageRollout", "packageRolloutPercentage") if k in rollout})
            return Reply(200, self.view(sid))
        if verb == "commit" and m == "POST":
            if status != "PendingCommit":
                raise Refusal(409, f"Submission {sid} is {status}, not PendingCommit")
            missing = self.missing_packages(sid, s, flight)
            s["committed"] = self.clock()
            s["resource"]["status"] = "CommitFailed" if missing else "CommitStarted"
            s["resource"]["statusDetails"] = {"errors": [{"code": "InvalidState", "details": f"{name} was not found in "
                                                          "the uploaded zip"} for name in missing],
                                              "warnings": [], "certificationReports": []}
            return Reply(202, {"status": s["resource"]["status"]})
        if verb == "status" and m == "GET":
            self.advance(s)
            return Reply(200, {"status": s["resource"]["status"],
                               "statusDetails": s["resource"].get("statusDetails") or {"errors": [], "warnings": [],
                                                                                        "certificationReports": []}})
        if verb == "packagerollout" and m == "GET":
            self.advance(s)
            return Reply(200, dict(s["rollout"]))
        if verb in ("updatepackagerolloutpercentage", "haltpackagerollout", "finalizepackagerollout") and m == "POST":
            return self.rollout(request, s, verb)
        raise Violation(f"{m} {request.path}: not an operation of the submission API")

    def missing_packages(self, sid: str, s: dict, flight: str | None) -> list[str]:
        names = [p["fileName"] for p in s["resource"].get(self.packages_key(flight), [])
                 if p.get("fileStatus") == "PendingUpload"]
        blob = self.storage.data(sid)
        inside = set(zipfile.ZipFile(io.BytesIO(blob)).namelist()) if blob else set()
        return [n for n in names if n not in inside]

    def rollout(self, request: Request, s: dict, verb: str) -> Reply:
        self.advance(s)
        r = s["rollout"]
        if r["packageRolloutStatus"] != "PackageRolloutInProgress":
            raise Refusal(409, f"The package rollout is {r['packageRolloutStatus']}: it cannot change")
        if verb == "updatepackagerolloutpercentage":
            given = parse_qs(request.query).get("percentage", [""])[-1]
            try:
                percentage = float(given)
            except ValueError:
                raise Violation(f"updatepackagerolloutpercentage: percentage={given!r} is not a number") from None
            if not 0 <= percentage <= 100 or percentage < r["packageRolloutPercentage"]:
                raise Refusal(400, f"percentage {percentage:g} must be in 0-100 and not below "
                                   f"{r['packageRolloutPercentage']:g}")
            r["packageRolloutPercentage"] = percentage
        elif verb == "haltpackagerollout":
            r["packageRolloutStatus"] = "PackageRolloutStopped"
        else:
            r["packageRolloutStatus"], r["packageRolloutPercentage"] = "PackageRolloutComplete", 100.0
        self.rollout_calls.append((verb, f"{r['packageRolloutPercentage']:g}"))
        return Reply(200, dict(r))

    def blob(self, request: Request) -> Reply:
        """The submission's Azure blob (SAS URL: no bearer token)."""
        sid = request.path.split("/")[2]
        if sid not in self.submissions:
            return Reply(403, b"AuthenticationFailed")
        return self.storage.handle(sid, request)
