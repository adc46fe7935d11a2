"""A loopback (HTTPS) stand-in for Intune on Microsoft Graph v1.0 and Azure AD: an app (`GET
mobileApps/{id}`, its `@odata.type`), its assignments (`GET …/assignments`, paged by `@odata.nextLink`;
`POST …/assign`, which replaces the whole set, never merges) and the reports export (`POST
deviceManagement/reports/exportJobs`, polled, then the zip at its `url`).

Graph's metadata is too large for ../shared; the official SDK (`msgraph-sdk`, generated from it) is the
description: each body is read into the SDK's model (`AssignPostRequestBody`, `DeviceManagementExportJob`)
and must come back out the same — an unknown field (kept aside as `additional_data`) or a value outside
an enum (lost in the round trip) is a violation; the answers are written from the SDK's models too.

Stricter than Graph where its reference is silent (each a violation or a 400 here, perhaps accepted there):
- an assignment's settings must be the type Graph v1.0 defines for the app's type (`SETTINGS`), or none;
- one assignment per target (a group twice, or included and excluded, is refused);
- the export must `select` its columns ("do not build automation around default columns") from the
  report's own, never a `_loc` column (selected with its column, not alone); the assignment list is paged
  three to a page.
Reports follow the documented localization: with `localizedValuesAsAdditionalColumn` (also when the job
names none) an enum column (`AppInstallState`, `AppInstallStateDetails`) holds its value and
`<column>_loc` the English text. The reference lists neither the values nor their type: the stand-in
takes Graph's resultantAppState (installed 1, failed 2, not installed 3, as JSON numbers) — an
assumption the client shares, not a documented fact; with `replaceLocalizableValues` the column holds the text.

Devices: `groups` maps each group to its devices; a device installs once a target includes it and no
exclusion target excludes it (required), and fails when its group is in `failing` (the share of its
devices that fail).
"""

from __future__ import annotations

import io
import json
import re
import secrets
import zipfile
from typing import Any

from localcluster.stores.azuread import TENANT, azure_ad
from localcluster.stores.standin import Refusal, Reply, Request, StandIn, Violation

SCOPE = "https://graph.microsoft.com/.default"
COLUMNS = ["DeviceId", "DeviceName", "UserPrincipalName", "Platform", "AppVersion", "ApplicationId",
           "AppInstallState", "AppInstallStateDetails", "ErrorCode", "HexErrorCode", "LastModifiedDateTime"]
LOCALIZED = {"AppInstallState": {1: "Installed", 2: "Failed", 3: "Not Installed", 5: "Install Pending"},
             "AppInstallStateDetails": {0: "No additional details", 1: "The application failed to install."}}
SETTINGS = {"win32LobApp": "win32LobAppAssignmentSettings", "iosStoreApp": "iosStoreAppAssignmentSettings",
            "iosLobApp": "iosLobAppAssignmentSettings", "iosVppApp": "iosVppAppAssignmentSettings",
            "macOSLobApp": "macOsLobAppAssignmentSettings",
            "microsoftStoreForBusinessApp": "microsoftStoreForBusinessAppAssignmentSettings",
            "windowsAppX": "windowsAppXAppAssignmentSettings",
            "windowsUniversalAppX": "windowsUniversalAppXAppAssignmentSettings"}
PAGE = 3
GRAPH = "#microsoft.graph."


def _kiota_round_trip(body: dict, model_type) -> Any:
    """The body as the SDK's model; a violation when the model cannot hold all of it."""
    from kiota_serialization_json.json_parse_node import JsonParseNode
    from kiota_serialization_json.json_serialization_writer import JsonSerializationWriter

    model = JsonParseNode(body).get_object_value(model_type)
    unknown = _unknown(model)
    if unknown:
        raise Violation(f"{model_type.__name__}: unknown fields {', '.join(unknown)}")
    writer = JsonSerializationWriter()
    writer.write_object_value(None, model)
    back = json.loads(writer.get_serialized_content())
    if _normal(back) != _normal(body):
        raise Violation(f"{model_type.__name__}: {json.dumps(body)} does not survive the SDK's model "
                        f"(read back as {json.dumps(back)}): a value outside its type or enum")
    return model


def _unknown(model, path: str = "") -> list[str]:
    found = [f"{path}{key}" for key in (getattr(model, "additional_data", None) or {})]
    for name, value in vars(model).items() if hasattr(model, "__dict__") else []:
        items = value if isinstance(value, list) else [value]
        for item in items:
            if hasattr(item, "additional_data"):
                found += _unknown(item, f"{path}{name}.")
    return found


def _normal(value: Any) -> Any:
    """JSON compared without nulls, and datetimes as instants."""
    from datetime import datetime

    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)", value):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return value


class IntuneStandIn(StandIn):
    name = "intune"

    def __init__(self, clients: dict[str, str]) -> None:
        super().__init__()
        self.clients = clients
        self.apps: dict[str, list[dict]] = {}  # app id → assignments as Graph shows them
        self.types: dict[str, str] = {}  # app id → its type (win32LobApp, iosStoreApp, windowsMobileMSI, …)
        self.groups: dict[str, list[str]] = {}  # group → devices
        self.failing: dict[str, float] = {}  # group → share of its devices that fail to install
        self.jobs: dict[str, dict] = {}
        self.assigned_sets: list[list[str]] = []  # the groups of every assign call, in order
        self.portal_edits: list[dict] = []  # assignments someone adds in the portal after the next assign
        self.portal_removals: dict[int, list[str]] = {}  # after the n-th assign (1-based), someone deletes there
        # the assignments of these group IDs

    def seed(self, app_id: str, assignments: list[dict] | None = None, kind: str = "win32LobApp") -> None:
        with self.lock:
            self.apps[app_id], self.types[app_id] = list(assignments or []), kind

    # ---- dispatch -------------------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        if request.path.startswith(f"/{TENANT}/"):
            return azure_ad(self, request, self.clients, {SCOPE}) or Reply(404)
        if request.path.startswith("/reports/"):
            return self.download(request.path.split("/")[-1].removesuffix(".zip"))
        if not self.authorized(request):
            raise Refusal(401, "Access token is empty, expired or revoked.")
        if found := re.fullmatch(r"/v1\.0/deviceAppManagement/mobileApps/([0-9a-f-]{36})(/assignments|/assign)?",
                                 request.path):
            app, verb = found.groups()
            if app not in self.apps:
                raise Refusal(404, f"Resource not found for the segment 'mobileApps' ({app}).")
            if verb is None and request.method == "GET":
                return Reply(200, {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#deviceAppManagement/"
                                                     "mobileApps/$entity", "@odata.type": GRAPH + self.types[app],
                                   "id": app, "displayName": "Contoso Client"})
            if verb == "/assignments" and request.method == "GET":
                return self.page(app, request.query)
            if verb == "/assign" and request.method == "POST":
                return self.assign(app, request.json())
        if request.path == "/v1.0/deviceManagement/reports/exportJobs" and request.method == "POST":
            return self.export(request.json())
        if found := re.fullmatch(r"/v1\.0/deviceManagement/reports/exportJobs\('([\w-]+)'\)", request.path):
            return self.job(found.group(1))
        raise Violation(f"{request.method} {request.path}: not a Graph v1.0 call the Intune channel makes")

    def error(self, status: int, message: str) -> dict:
        code = {400: "BadRequest", 401: "InvalidAuthenticationToken", 404: "ResourceNotFound",
                429: "TooManyRequests"}.get(status, "InternalServerError")
        return {"error": {"code": code, "message": message,
                          "innerError": {"request-id": secrets.token_hex(8), "date": "2026-12-01T00:00:00"}}}

    # ---- calls ----------------------------------------------------------------------------------------

    def page(self, app: str, query: str) -> Reply:
        skip = re.fullmatch(r"\$skiptoken=(\d+)", query or "$skiptoken=0")
        if skip is None:
            raise Violation(f"GET assignments?{query}: the channel follows @odata.nextLink as given")
        start = int(skip.group(1))
        answer = {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#deviceAppManagement/"
                                    f"mobileApps('{app}')/assignments", "value": self.apps[app][start:start + PAGE]}
        if start + PAGE < len(self.apps[app]):
            answer["@odata.nextLink"] = f"{self.url}/v1.0/deviceAppManagement/mobileApps/{app}/assignments" \
                                        f"?$skiptoken={start + PAGE}"
        return Reply(200, answer)

    def assign(self, app: str, body: dict) -> Reply:
        from msgraph.generated.device_app_management.mobile_apps.item.assign.assign_post_request_body import (
            AssignPostRequestBody,
        )

        model = _kiota_round_trip(body, AssignPostRequestBody)
        assignments, targets = [], set()
        for a, entry in zip(model.mobile_app_assignments or [], body.get("mobileAppAssignments", []), strict=True):
            if a.intent is None or a.target is None:
                raise Refusal(400, "An assignment needs an intent and a target.")
            settings = (entry.get("settings") or {}).get("@odata.type")
            wanted = SETTINGS.get(self.types[app])
            if settings is not None and settings != GRAPH + str(wanted):
                raise Refusal(400, f"{settings} is not the assignment settings of a {self.types[app]}")
            group = getattr(a.target, "group_id", None) or ""
            if group in targets or (not group and entry["target"]["@odata.type"] in targets):
                raise Refusal(400, f"The app is assigned to {group or entry['target']['@odata.type']} twice.")
            targets.add(group or entry["target"]["@odata.type"])
            assignments.append({**entry, "id": f"{group or 'all'}_{a.intent.value}_{len(assignments)}"})
        # replaced, never merged; read back at once (the reference promises no read-after-write consistency: the
        # engine takes a ring group as removed only after a later read showed it assigned)
        self.apps[app] = assignments
        self.assigned_sets.append([self.shown(x["target"]) for x in assignments])
        for edit in self.portal_edits:  # an administrator's change in the portal, right after this assign
            self.apps[app].append({**edit, "id": f"portal_{len(self.apps[app])}"})
        self.portal_edits = []
        removed = set(self.portal_removals.pop(len(self.assigned_sets), []))
        self.apps[app] = [x for x in self.apps[app] if x["target"].get("groupId") not in removed]
        return Reply(204)

    @staticmethod
    def shown(target: dict) -> str:
        kind = str(target.get("@odata.type", "")).removeprefix(GRAPH)
        return {"groupAssignmentTarget": target.get("groupId"), "exclusionGroupAssignmentTarget":
                f"not {target.get('groupId')}", "allDevicesAssignmentTarget": "*",
                "allLicensedUsersAssignmentTarget": "all users"}.get(kind, kind)

    def export(self, body: dict) -> Reply:
        from msgraph.generated.models.device_management_export_job import DeviceManagementExportJob

        job = _kiota_round_trip(body, DeviceManagementExportJob)
        if job.report_name != "DeviceInstallStatusByApp":
            raise Refusal(400, f"Report {job.report_name} is not supported by the stand-in")
        app = re.fullmatch(r"\(ApplicationId eq '([0-9a-f-]{36})'\)", job.filter or "")
        if app is None:
            raise Refusal(400, f"Invalid filter: {job.filter!r}")
        if not job.select:
            raise Violation("exportJobs: no select (Microsoft: select the columns; default columns may change)")
        unknown = [c for c in job.select if c not in COLUMNS]
        if unknown:
            raise Refusal(400, f"UnknownError: column {', '.join(unknown)} is not in {job.report_name}")
        replace = job.localization_type is not None and job.localization_type.value == "replaceLocalizableValues"
        columns = [out for c in job.select for out in ([c] if replace or c not in LOCALIZED else [c, f"{c}_loc"])]
        rows = [[self.cell(row, c, replace) for c in columns] for row in self.rows(app.group(1))]
        job_id = f"{job.report_name}_{secrets.token_hex(6)}"
        self.jobs[job_id] = {"app": app.group(1), "polls": 0, "rows": rows, "columns": columns}
        return Reply(201, {"id": job_id, "reportName": job.report_name, "filter": job.filter, "format": "json",
                           "select": job.select, "status": "notStarted", "url": None,
                           "localizationType": "replaceLocalizableValues" if replace
                           else "localizedValuesAsAdditionalColumn"})

    @staticmethod
    def cell(row: dict, column: str, replace: bool) -> Any:
        name = column.removesuffix("_loc")
        if name in LOCALIZED and (replace or column.endswith("_loc")):
            return LOCALIZED[name][row[name]]
        return row[name]

    def job(self, job_id: str) -> Reply:
        job = self.jobs.get(job_id)
        if job is None:
            raise Refusal(404, f"Export job {job_id} not found")
        job["polls"] += 1
        done = job["polls"] >= 2  # in progress on the first look, as a real export is
        return Reply(200, {"id": job_id, "reportName": "DeviceInstallStatusByApp", "format": "json",
                           "status": "completed" if done else "inProgress",
                           "url": f"{self.url}/reports/{job_id}.zip" if done else None})

    def rows(self, app: str) -> list[dict]:
        """One row per device an include target reaches and no exclusion target excludes: a required
        target installs (or fails), an available or uninstall one leaves it not installed (3)."""
        assignments = self.apps.get(app, [])
        excluded = {d for a in assignments if a["target"]["@odata.type"].endswith("exclusionGroupAssignmentTarget")
                    for d in self.groups.get(a["target"]["groupId"], [])}
        everyone = list(dict.fromkeys(d for ds in self.groups.values() for d in ds))
        reached: dict[str, tuple[str | None, bool]] = {}
        for a in assignments:
            kind = a["target"]["@odata.type"].removeprefix(GRAPH)
            devices = self.groups.get(a["target"]["groupId"], []) if kind == "groupAssignmentTarget" else \
                everyone if kind in ("allDevicesAssignmentTarget", "allLicensedUsersAssignmentTarget") else []
            for device in devices:
                if device not in excluded and not reached.get(device, (None, False))[1]:
                    reached[device] = (a["target"].get("groupId"), a["intent"] == "required")
        rows, failed = [], {}
        for device, (group, required) in reached.items():
            count = failed.setdefault(group, [0, round(len(self.groups.get(group, [])) * self.failing.get(group, 0.0))])
            state = 3 if not required else 2 if count[0] < count[1] else 1
            count[0] += state == 2
            rows.append({"DeviceId": device, "DeviceName": device, "UserPrincipalName": f"{device}@contoso.test",
                         "Platform": "Windows", "AppVersion": "2.0.0", "ApplicationId": app, "AppInstallState": state,
                         "AppInstallStateDetails": 1 if state == 2 else 0, "ErrorCode": -2016344036 if state == 2 else 0,
                         "HexErrorCode": "0x87D1041C" if state == 2 else "", "LastModifiedDateTime": "2026-12-01T00:00:00"})
        return rows

    def download(self, job_id: str) -> Reply:
        job = self.jobs.get(job_id)
        if job is None:
            return Reply(404)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as z:
            z.writestr(f"{job_id}.json", json.dumps({"TotalRowCount": len(job["rows"]), "Schema": [
                {"Column": c, "PropertyType": "String" if c.endswith("_loc") or c not in LOCALIZED else "Int32"}
                for c in job["columns"]], "Values": job["rows"]}))
        return Reply(200, buffer.getvalue(), {"content-type": "application/octet-stream"})

