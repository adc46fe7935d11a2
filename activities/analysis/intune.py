"""Intune installs provider: the install outcomes of an app across its assigned devices, from the
reports export (`DeviceInstallStatusByApp`, its columns selected, polled until the job completes): each
device's `AppInstallState` value (taken to be Graph's resultantAppState: 1 installed, 2 failed, any other
pending — the reports reference does not list the values), never its localized text. Signs in as the Intune channel does (`$DURABLE_ROLLOUTS_INTUNE_CREDENTIALS`)."""

from __future__ import annotations

from typing import Any

from activities.analysis import EmptyResult
from activities.targets.intune import graph_api
from activities.targets.intune.reports import FAILED, INSTALLED, enum_value, export_rows
from activities.targets.storeapi import StoreApi, UsesStore
from models.analysis import Metric, fill

OUTCOMES = {INSTALLED: "installed", FAILED: "failed"}  # resultantAppState; any other state is pending
COLUMNS = ["DeviceId", "AppInstallState"]


class IntuneInstallsSource(UsesStore):
    def build_api(self) -> StoreApi:
        return graph_api()

    def measure(self, metric: Metric, args: dict[str, str]) -> tuple[Any, str]:
        p = metric.provider.intune_installs
        app = fill(p.app_id, args)
        shown = f"DeviceInstallStatusByApp of {app}"
        rows = export_rows(self.api, "DeviceInstallStatusByApp", f"(ApplicationId eq '{app}')", COLUMNS)
        counts = {"installed": 0, "failed": 0, "pending": 0}
        for row in rows:
            state = enum_value(row.get("AppInstallState"))
            if state is None:
                raise EmptyResult(f"AppInstallState {str(row.get('AppInstallState'))[:40]!r} is no install state's value",
                                  shown)
            counts[OUTCOMES.get(state, "pending")] += 1
        reported = counts["installed"] + counts["failed"]
        if reported < p.minimum_reports:
            raise EmptyResult(f"{reported} devices reported an outcome (at least {p.minimum_reports} wanted)", shown)
        return {**counts, "successRate": round(100 * counts["installed"] / reported, 3)}, shown
