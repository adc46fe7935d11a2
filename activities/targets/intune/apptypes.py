"""An Intune app's assignments as Graph v1.0 holds them, and the settings a new one gets by app type.

`POST mobileApps/{id}/assign` replaces the app's whole assignment set, so every assignment the app had
is sent back exactly as it was read (`Assignment.graph`: target type, intent, settings, filters — only
its `id` left out); only the release's ring groups are added. A new ring's settings are the ones Graph
v1.0 defines for the app's `@odata.type` (`SETTINGS`); apps of other types are refused before anything
is assigned. A deadline is given in UTC with `useLocalTime: false` (with `useLocalTime: true` the
device would read the instant as its own wall-clock time).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from temporalio.exceptions import ApplicationError

from models.intune import EXCLUSION, Assignment, IntuneChannel, ring_key

GRAPH = "#microsoft.graph."

# app @odata.type → (the settings type Graph v1.0 defines for its assignments, takes a deadline and notifications)
SETTINGS: dict[str, tuple[str, bool]] = {
    "win32LobApp": ("win32_lob_app_assignment_settings.Win32LobAppAssignmentSettings", True),
    "iosStoreApp": ("ios_store_app_assignment_settings.IosStoreAppAssignmentSettings", False),
    "iosLobApp": ("ios_lob_app_assignment_settings.IosLobAppAssignmentSettings", False),
    "iosVppApp": ("ios_vpp_app_assignment_settings.IosVppAppAssignmentSettings", False),
    "macOSLobApp": ("mac_os_lob_app_assignment_settings.MacOsLobAppAssignmentSettings", False),
    "microsoftStoreForBusinessApp": (
        "microsoft_store_for_business_app_assignment_settings.MicrosoftStoreForBusinessAppAssignmentSettings", False),
    "windowsAppX": ("windows_app_x_app_assignment_settings.WindowsAppXAppAssignmentSettings", False),
    "windowsUniversalAppX": (
        "windows_universal_app_x_app_assignment_settings.WindowsUniversalAppXAppAssignmentSettings", False),
}


def app_type(app: dict) -> str:
    """The app's type (`win32LobApp`), or a permanent error naming the types the channel assigns."""
    kind = str(app.get("@odata.type", "")).removeprefix(GRAPH)
    if kind not in SETTINGS:
        raise ApplicationError(
            f"Intune: app {app.get('id', '?')} is a {kind or 'mobileApp of no @odata.type'}; the channel assigns "
            f"{', '.join(sorted(SETTINGS))} apps (Graph v1.0 defines their assignment settings)",
            type="StoreRejected", non_retryable=True)
    return kind


def takes_deadline(kind: str) -> bool:
    return SETTINGS[kind][1]


def from_graph(raw: dict) -> Assignment:
    """One assignment as Graph listed it, kept whole (its id left out)."""
    target = raw.get("target") or {}
    times = (raw.get("settings") or {}).get("installTimeSettings") or {}
    return Assignment(group_id=str(target.get("groupId") or ""), intent=str(raw.get("intent") or ""),
                      deadline=str(times.get("deadlineDateTime") or ""),
                      target=str(target.get("@odata.type", "")).removeprefix(GRAPH),
                      graph={k: v for k, v in raw.items() if k != "id"})


def conflicts(found: list[Assignment], groups: list[str], intent: str) -> list[str]:
    """Why the rings cannot be added to these assignments: a ring group excluded, or assigned with another intent."""
    problems = []
    for group in dict.fromkeys(groups):
        name = "all devices" if group == "*" else f"group {group}"
        if group != "*" and any(a.key() == (EXCLUSION, group) for a in found):
            problems.append(f"{name} is excluded from the app: a ring cannot include it")
        problems += [f"{name} is already assigned as {a.intent!r}, the rings assign {intent!r}"
                     for a in found if a.key() == ring_key(group) and a.intent != intent]
    return problems


def settings_like(kind: str, intent: str, *sources: list[Assignment]) -> dict | None:
    """The settings of the app's own include assignment of this intent (the first source that has one):
    device licensing, device context, restart and delivery settings are the app's, not Graph's defaults."""
    name = SETTINGS[kind][0].split(".")[1]  # the SDK class; its @odata.type is the same name, lower-camel
    wanted = GRAPH + name[0].lower() + name[1:]
    for found in sources:
        for a in found:
            settings = a.graph.get("settings") or {}
            if a.key()[0] != EXCLUSION and a.intent == intent and settings.get("@odata.type") == wanted:
                return {k: v for k, v in settings.items() if k != "installTimeSettings"}
    return None


def new_assignment(kind: str, group: str, channel: IntuneChannel, deadline: datetime | None,
                   like: dict | None = None) -> Assignment:
    """A ring's assignment: the channel's intent, the settings of the app's type — `like`'s (another
    assignment's settings) where given — with the channel's notifications and a deadline in UTC."""
    import importlib

    from msgraph.generated.models.all_devices_assignment_target import AllDevicesAssignmentTarget
    from msgraph.generated.models.group_assignment_target import GroupAssignmentTarget
    from msgraph.generated.models.install_intent import InstallIntent
    from msgraph.generated.models.mobile_app_assignment import MobileAppAssignment

    module, name = SETTINGS[kind][0].split(".")
    settings = getattr(importlib.import_module(f"msgraph.generated.models.{module}"), name)()
    if takes_deadline(kind):
        from msgraph.generated.models.mobile_app_install_time_settings import MobileAppInstallTimeSettings
        from msgraph.generated.models.win32_lob_app_notification import Win32LobAppNotification

        settings.notifications = Win32LobAppNotification(channel.notifications)
        if deadline is not None:
            settings.install_time_settings = MobileAppInstallTimeSettings(use_local_time=False,
                                                                          deadline_date_time=deadline)
    target = AllDevicesAssignmentTarget() if group == "*" else GroupAssignmentTarget(group_id=group)
    model = MobileAppAssignment(intent=InstallIntent(channel.intent), target=target, settings=settings)
    raw = json.loads(serialize(model))
    if like is not None:
        raw["settings"] = {**like, **{k: v for k, v in raw["settings"].items() if k != "@odata.type"}}
    return from_graph(raw)


def canonical(raw: dict) -> str:
    """An assignment compared as Graph would store it: no id, no nulls, instants as instants."""
    def normal(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: normal(v) for k, v in value.items() if v is not None and k != "id"}
        if isinstance(value, list):
            return [normal(v) for v in value]
        if isinstance(value, str) and len(value) >= 20 and value[4:5] == "-" and value[10:11] == "T":
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                return value
        return value

    return json.dumps(normal(raw), sort_keys=True)


def serialize(model) -> bytes:
    from kiota_serialization_json.json_serialization_writer import JsonSerializationWriter

    writer = JsonSerializationWriter()
    writer.write_object_value(None, model)
    return writer.get_serialized_content()
