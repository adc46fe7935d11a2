"""The Intune channel's activities (Microsoft Graph v1.0): read the app's assignments, and assign the
app to a set of groups. `assign` replaces the whole set, so the set sent is everything wanted: the
assignments from before the release, the earlier rings (their deadlines as they were) and the new
ring (its deadline from now). Bodies are built and answers read with the Microsoft Graph SDK's models
(`msgraph-sdk`, generated from Graph's metadata) and kiota's JSON serialization; an unchanged set is
not sent again."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

from temporalio import activity

from activities.targets.azuread import AzureTokens
from activities.targets.storeapi import StoreApi, UsesStore
from models.intune import AssignInput, Assignment, AssignmentSet

API_ENV = "DURABLE_ROLLOUTS_GRAPH_API"
CREDENTIALS_ENV = "DURABLE_ROLLOUTS_INTUNE_CREDENTIALS"
SCOPE = "https://graph.microsoft.com/.default"


def graph_api() -> StoreApi:
    return StoreApi("Intune", os.environ.get(API_ENV, "https://graph.microsoft.com/"),
                    AzureTokens(SCOPE, "Intune", CREDENTIALS_ENV))


def serialize(model) -> bytes:
    from kiota_serialization_json.json_serialization_writer import JsonSerializationWriter

    writer = JsonSerializationWriter()
    writer.write_object_value(None, model)
    return writer.get_serialized_content()


def parse(data, model_type):
    from kiota_serialization_json.json_parse_node import JsonParseNode

    return JsonParseNode(data).get_object_value(model_type)


def to_graph(assignment: Assignment, notifications: str):
    from msgraph.generated.models.all_devices_assignment_target import AllDevicesAssignmentTarget
    from msgraph.generated.models.group_assignment_target import GroupAssignmentTarget
    from msgraph.generated.models.install_intent import InstallIntent
    from msgraph.generated.models.mobile_app_assignment import MobileAppAssignment
    from msgraph.generated.models.mobile_app_install_time_settings import MobileAppInstallTimeSettings
    from msgraph.generated.models.win32_lob_app_assignment_settings import Win32LobAppAssignmentSettings
    from msgraph.generated.models.win32_lob_app_notification import Win32LobAppNotification

    target = GroupAssignmentTarget(group_id=assignment.group_id) if assignment.group_id else AllDevicesAssignmentTarget()
    times = MobileAppInstallTimeSettings(use_local_time=True, deadline_date_time=datetime.fromisoformat(
        assignment.deadline)) if assignment.deadline else None
    return MobileAppAssignment(intent=InstallIntent(assignment.intent), target=target, settings=Win32LobAppAssignmentSettings(
        notifications=Win32LobAppNotification(notifications), install_time_settings=times))


def from_graph(assignment) -> Assignment:
    target, settings = assignment.target, assignment.settings
    times = getattr(settings, "install_time_settings", None)
    deadline = times.deadline_date_time.isoformat() if times is not None and times.deadline_date_time else ""
    return Assignment(group_id=getattr(target, "group_id", "") or "", intent=assignment.intent.value, deadline=deadline)


class IntuneActivities(UsesStore):
    def build_api(self) -> StoreApi:
        return graph_api()

    def _read(self, app_id: str) -> list[Assignment]:
        from msgraph.generated.models.mobile_app_assignment_collection_response import (
            MobileAppAssignmentCollectionResponse,
        )

        answer = self.api.json("GET", f"v1.0/deviceAppManagement/mobileApps/{app_id}/assignments", "assignments")
        return [from_graph(a) for a in parse(answer, MobileAppAssignmentCollectionResponse).value or []]

    @activity.defn(name="read_intune_assignments")
    def read_assignments(self, request: AssignInput) -> AssignmentSet:
        return AssignmentSet(assignments=self._read(request.channel.app_id))

    @activity.defn(name="assign_intune_app")
    def assign(self, request: AssignInput) -> AssignmentSet:
        from msgraph.generated.device_app_management.mobile_apps.item.assign.assign_post_request_body import (
            AssignPostRequestBody,
        )

        c = request.channel
        current = {(a.group_id or "*", a.intent): a for a in self._read(c.app_id)}
        deadline = (datetime.now(UTC) + c.install_deadline).replace(microsecond=0).isoformat() \
            if c.install_deadline and c.intent == "required" else ""
        wanted = list(request.keep)
        for group in request.groups:
            found = current.get((group, c.intent))
            wanted.append(found or Assignment(group_id="" if group == "*" else group, intent=c.intent,
                                              deadline=deadline))
        if sorted((a.group_id, a.intent) for a in wanted) == sorted((a.group_id, a.intent) for a in current.values()):
            return AssignmentSet(assignments=list(current.values()))
        body = AssignPostRequestBody(mobile_app_assignments=[to_graph(a, c.notifications) for a in wanted])
        self.api.call("POST", f"v1.0/deviceAppManagement/mobileApps/{c.app_id}/assign", "assign the app",
                      content=serialize(body), headers={"Content-Type": "application/json"})
        return AssignmentSet(assignments=wanted, changed=True)


def export_rows(api: StoreApi, report: str, filter_: str, poll: float = 1.0, timeout: float = 120.0) -> list[dict]:
    """A reports export job (`deviceManagement/reports/exportJobs`), polled until it completes; its rows."""
    import io
    import time
    import zipfile

    from msgraph.generated.models.device_management_export_job import DeviceManagementExportJob
    from msgraph.generated.models.device_management_report_file_format import DeviceManagementReportFileFormat
    from temporalio.exceptions import ApplicationError

    job = DeviceManagementExportJob(report_name=report, filter=filter_, format=DeviceManagementReportFileFormat.Json)
    created = api.json("POST", "v1.0/deviceManagement/reports/exportJobs", "export job", content=serialize(job),
                       headers={"Content-Type": "application/json"})
    started = time.monotonic()
    while True:
        state = parse(api.json("GET", f"v1.0/deviceManagement/reports/exportJobs('{created['id']}')", "export job"),
                      DeviceManagementExportJob)
        if state.status is not None and state.status.value == "completed" and state.url:
            break
        if state.status is not None and state.status.value == "failed":
            raise ApplicationError(f"Intune: export job {report} failed", type="StoreRejected", non_retryable=True)
        if time.monotonic() - started > timeout:
            raise ApplicationError(f"Intune: export job {report} not ready after {timeout:g}s", type="StoreUnavailable")
        time.sleep(poll)
    archive = api.call("GET", state.url, "the exported report", authorized=False).content
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        document = json.loads(z.read(z.namelist()[0]))
    columns = [c["Column"] for c in document.get("Schema", [])]
    return [dict(zip(columns, row, strict=False)) for row in document.get("Values", [])]
