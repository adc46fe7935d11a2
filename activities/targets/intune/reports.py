"""Intune's reports export (`deviceManagement/reports/exportJobs`, "Export Intune reports using Graph
APIs"): a job for one report with its columns chosen explicitly (`select`: the default columns may change
without notice) and its localization stated (`localizedValuesAsAdditionalColumn`: an enum column holds
the value, its text is in `<column>_loc`), polled until it completes; its rows from the zip at `url`."""

from __future__ import annotations

import io
import json
import time
import zipfile

from temporalio.exceptions import ApplicationError

from activities.targets.intune.apptypes import serialize
from activities.targets.storeapi import StoreApi

# The value AppInstallState holds with localizedValuesAsAdditionalColumn. The reports reference does not
# list the values: these are Graph's resultantAppState (installed 1, failed 2; a beta enum — v1.0 has only
# its names), an assumption the stand-in shares, and anything else counts as pending.
INSTALLED, FAILED = 1, 2
MAX_REPORT = 64 * 1024 * 1024  # the exported JSON, inflated (a device a row: ~300,000 devices)


def export_rows(api: StoreApi, report: str, filter_: str, select: list[str], poll: float = 1.0,
                timeout: float = 120.0) -> list[dict]:
    """The report's rows (column → value), `select`'s columns and their `_loc` texts."""
    from msgraph.generated.models.device_management_export_job import DeviceManagementExportJob
    from msgraph.generated.models.device_management_export_job_localization_type import (
        DeviceManagementExportJobLocalizationType,
    )
    from msgraph.generated.models.device_management_report_file_format import DeviceManagementReportFileFormat

    from activities.targets.intune import parse

    job = DeviceManagementExportJob(
        report_name=report, filter=filter_, select=select, format=DeviceManagementReportFileFormat.Json,
        localization_type=DeviceManagementExportJobLocalizationType.LocalizedValuesAsAdditionalColumn)
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
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as z, z.open(z.infolist()[0]) as member:
            data = member.read(MAX_REPORT + 1)  # read to the cap, whatever the zip's header claims
        if len(data) > MAX_REPORT:
            raise ValueError(f"it inflates to more than {MAX_REPORT} bytes")
        document = json.loads(data)
        if not isinstance(document, dict) or not isinstance(document.get("Schema", []), list):
            raise ValueError("no Schema and Values")
    except (zipfile.BadZipFile, IndexError, ValueError) as error:  # JSONDecodeError is a ValueError
        raise ApplicationError(f"Intune: the {report} export is not a report: {str(error)[:200]}",
                               type="StoreRejected", non_retryable=True) from None
    columns = [c["Column"] for c in document.get("Schema", [])]
    missing = [c for c in select if c not in columns]
    if missing:
        raise ApplicationError(f"Intune: the {report} export has no column {', '.join(missing)}",
                               type="StoreRejected", non_retryable=True)
    return [dict(zip(columns, row, strict=False)) for row in document.get("Values", [])]


def enum_value(value: object) -> int | None:
    """An enum column's value (a number, or its digits as text); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None
