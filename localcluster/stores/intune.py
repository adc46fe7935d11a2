"""A loopback (HTTPS) stand-in for Intune on Microsoft Graph v1.0 and Azure AD: an app's assignments
(`GET …/assignments`, `POST …/assign`, which replaces the whole set) and the reports export
(`POST deviceManagement/reports/exportJobs`, polled, then the zip at its `url`).

Graph's metadata is too large for ../shared; the official SDK (`msgraph-sdk`, generated from it) is the
description: each body is read into the SDK's model (`AssignPostRequestBody`, `DeviceManagementExportJob`)
and must come back out the same — an unknown field (kept aside as `additional_data`) or a value outside
an enum (lost in the round trip) is a violation; the answers are written from the SDK's models too.

Devices: `groups` maps each group to its devices; a device installs once its group is assigned
(required), and fails when the group is in `failing` (the share of its devices that fail).
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
           "AppInstallState", "AppInstallStateDetails", "HexErrorCode"]


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
        self.groups: dict[str, list[str]] = {}  # group → devices
        self.failing: dict[str, float] = {}  # group → share of its devices that fail to install
        self.jobs: dict[str, dict] = {}
        self.assigned_sets: list[list[str]] = []  # the groups of every assign call, in order

    def seed(self, app_id: str, assignments: list[dict] | None = None) -> None:
        with self.lock:
            self.apps[app_id] = list(assignments or [])

    # ---- dispatch -------------------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        if request.path.startswith(f"/{TENANT}/"):
            return azure_ad(self, request, self.clients, {SCOPE}) or Reply(404)
        if request.path.startswith("/reports/"):
            return self.download(request.path.split("/")[-1].removesuffix(".zip"))
        if not self.authorized(request):
            raise Refusal(401, "Access token is empty, expired or revoked.")
        if found := re.fullmatch(r"/v1\.0/deviceAppManagement/mobileApps/([0-9a-f-]{36})/(assignments|assign)",
                                 request.path):
            app, verb = found.groups()
            if app not in self.apps:
                raise Refusal(404, f"Resource not found for the segment 'mobileApps' ({app}).")
            if verb == "assignments" and request.method == "GET":
                return Reply(200, {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#deviceAppManagement/"
                                                     f"mobileApps('{app}')/assignments", "value": self.apps[app]})
            if verb == "assign" and request.method == "POST":
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

    def assign(self, app: str, body: dict) -> Reply:
        from msgraph.generated.device_app_management.mobile_apps.item.assign.assign_post_request_body import (
            AssignPostRequestBody,
        )

        model = _kiota_round_trip(body, AssignPostRequestBody)
        assignments = []
        for a, entry in zip(model.mobile_app_assignments or [], body.get("mobileAppAssignments", []), strict=True):
            if a.intent is None or a.target is None:
                raise Refusal(400, "An assignment needs an intent and a target.")
            assignments.append({**entry, "id": f"{getattr(a.target, 'group_id', None) or 'all'}_{a.intent.value}"})
        self.apps[app] = assignments  # replaced, never merged
        self.assigned_sets.append([x["target"].get("groupId", "*") for x in assignments])
        return Reply(204)

    def export(self, body: dict) -> Reply:
        from msgraph.generated.models.device_management_export_job import DeviceManagementExportJob

        job = _kiota_round_trip(body, DeviceManagementExportJob)
        if job.report_name != "DeviceInstallStatusByApp":
            raise Refusal(400, f"Report {job.report_name} is not supported by the stand-in")
        app = re.fullmatch(r"\(ApplicationId eq '([0-9a-f-]{36})'\)", job.filter or "")
        if app is None:
            raise Refusal(400, f"Invalid filter: {job.filter!r}")
        job_id = f"{job.report_name}_{secrets.token_hex(6)}"
        self.jobs[job_id] = {"app": app.group(1), "polls": 0, "rows": self.rows(app.group(1))}
        return Reply(201, {"id": job_id, "reportName": job.report_name, "filter": job.filter, "format": "json",
                           "status": "notStarted", "url": None, "localizationType": "localizedValuesAsAdditionalColumn"})

    def job(self, job_id: str) -> Reply:
        job = self.jobs.get(job_id)
        if job is None:
            raise Refusal(404, f"Export job {job_id} not found")
        job["polls"] += 1
        done = job["polls"] >= 2  # in progress on the first look, as a real export is
        return Reply(200, {"id": job_id, "reportName": "DeviceInstallStatusByApp", "format": "json",
                           "status": "completed" if done else "inProgress",
                           "url": f"{self.url}/reports/{job_id}.zip" if done else None})

    def rows(self, app: str) -> list[list[Any]]:
        rows = []
        for assignment in self.apps.get(app, []):
            group = assignment["target"].get("groupId")
            devices = self.groups.get(group, []) if group else [d for ds in self.groups.values() for d in ds]
            failing = round(len(devices) * self.failing.get(group, 0.0)) if group else 0
            for index, device in enumerate(devices):
                state = "Failed" if index < failing else "Installed"
                rows.append([device, device, f"{device}@contoso.test", "Windows", "2.0.0", app, state,
                             "" if state == "Installed" else "The application failed to install.",
                             "" if state == "Installed" else "0x87D1041C"])
        return rows

    def download(self, job_id: str) -> Reply:
        job = self.jobs.get(job_id)
        if job is None:
            return Reply(404)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as z:
            z.writestr(f"{job_id}.json", json.dumps({"TotalRowCount": len(job["rows"]), "Schema": [
                {"Column": c, "PropertyType": "String"} for c in COLUMNS], "Values": job["rows"]}))
        return Reply(200, buffer.getvalue(), {"content-type": "application/octet-stream"})

