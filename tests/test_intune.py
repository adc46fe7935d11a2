"""The Intune channel against an HTTPS loopback stand-in of Microsoft Graph v1.0 and Azure AD
(devtools/localcluster/stores/intune.py), whose bodies are checked against the Microsoft Graph SDK's models:
rings assigned cumulatively, each gated on the install success rate from the reports export."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import httpx
import pytest

from activities.analysis.intune import IntuneInstallsSource
from activities.targets.intune import IntuneActivities
from localcluster.stores.azuread import credentials_file
from localcluster.stores.intune import IntuneStandIn
from localcluster.stores.tls import loopback_certificate, server_context
from models.documents import SpecError
from models.release import ReleaseInput
from models.status import Phase
from tests.store_helpers import assert_history_clean, killed_mid_phase, store_release, store_worker
from workflows.release import StagedRelease

APP = "3f1e2d4c-5b6a-4789-8a0b-1c2d3e4f5a6b"
PILOT, DEPARTMENTS, HELPDESK = ("0a1b2c3d-0000-4000-8000-00000000000" + n for n in "123")
RINGS = [{"name": "pilot", "groups": [PILOT], "share": 5}, {"name": "departments", "groups": [DEPARTMENTS], "share": 40},
         {"name": "everyone", "allDevices": True, "share": 100}]
GATE = {"templates": [{"name": "installs", "metrics": [{
    "name": "install-success", "successCondition": "result['successRate'] >= 95",
    "provider": {"intuneInstalls": {"appId": APP, "minimumReports": 5}}}]}]}
PHASES = [{"percent": 5, "bake": "1d", "analysis": {"templates": [{"templateName": "installs"}]}},
          {"percent": 40, "bake": "1d", "analysis": {"templates": [{"templateName": "installs"}]}}]


@pytest.fixture
def intune(tmp_path, monkeypatch):
    cert, key = loopback_certificate(tmp_path / "tls")
    credentials = tmp_path / "intune.json"
    standin = IntuneStandIn(credentials_file(credentials))
    standin.tls = server_context(cert, key)
    standin.start()
    for name, value in {"SSL_CERT_FILE": str(cert), "REQUESTS_CA_BUNDLE": str(cert),
                        "DURABLE_ROLLOUTS_INTUNE_CREDENTIALS": str(credentials),
                        "DURABLE_ROLLOUTS_GRAPH_API": standin.url, "DURABLE_ROLLOUTS_AZURE_AUTHORITY": standin.url}.items():
        monkeypatch.setenv(name, value)
    standin.seed(APP, [{"id": "helpdesk_available", "intent": "available", "target": {
        "@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": HELPDESK}}])
    standin.groups = {PILOT: [f"pilot-{n}" for n in range(10)], DEPARTMENTS: [f"dept-{n}" for n in range(40)],
                      HELPDESK: []}
    yield standin
    standin.stop()


def intune_release(name: str, phases=PHASES, rings=RINGS, **spec):
    return store_release(name, {"intune": {"appId": APP, "rings": rings}}, {"version": "2.0.0"}, phases,
                         analysis=GATE, **spec)


async def run(env, release, queue: str, standin: IntuneStandIn):
    a = IntuneActivities()
    async with store_worker(env.client, queue, [a.read_assignments, a.assign],
                            {"intuneInstalls": IntuneInstallsSource()}):
        handle = await env.client.start_workflow(StagedRelease.run, ReleaseInput(release=release),
                                                 id=release.rollout_id, task_queue=queue)
        final = await handle.result()
        await assert_history_clean(handle, standin, *standin.clients.values())
        return final


async def test_three_rings_are_assigned_cumulatively_each_gated_on_installs(time_skipping_env, intune, unique):
    final = await run(time_skipping_env, intune_release(f"intune-{unique}"), f"intune-{unique}", intune)
    assert final.phase is Phase.HEALTHY, final.message
    assert intune.assigned_sets == [[HELPDESK, PILOT], [HELPDESK, PILOT, DEPARTMENTS],
                                    [HELPDESK, PILOT, DEPARTMENTS, "*"]], "each ring re-sends the earlier ones"
    pilot = [a for a in intune.apps[APP] if a["target"].get("groupId") == PILOT][0]
    first_deadline = intune.calls("/assign", "POST")[0]
    sent = [a for a in first_deadline.json()["mobileAppAssignments"] if a["target"].get("groupId") == PILOT][0]
    assert pilot["settings"]["installTimeSettings"] == sent["settings"]["installTimeSettings"], \
        "the pilot's deadline is the one it got when its ring was added"
    measured = [m.value for r in final.analysis for m in r.measurements]
    assert measured[-1] == '{"installed": 50, "failed": 0, "pending": 0, "successRate": 100.0}'
    assert len([r for r in intune.calls(APP, "GET") if r.path.endswith(f"/mobileApps/{APP}")]) == 1, \
        "the app (its type) read once, at prepare"
    assert intune.violations == []


async def test_an_earlier_ring_removed_in_intune_is_not_assigned_again(time_skipping_env, intune, unique):
    """An administrator takes the pilot group off the app while the departments ring bakes: the last ring
    does not put it back (each assign rebuilds from what Graph holds and adds only rings not assigned
    before), and the status says so."""
    intune.portal_removals = {2: [PILOT]}
    final = await run(time_skipping_env, intune_release(f"intune-rm-{unique}"), f"intune-rm-{unique}", intune)
    assert final.phase is Phase.HEALTHY, final.message
    assert intune.assigned_sets == [[HELPDESK, PILOT], [HELPDESK, PILOT, DEPARTMENTS], [HELPDESK, DEPARTMENTS, "*"]], \
        intune.assigned_sets
    assert [h.detail for h in final.history if h.event == "left-out"] == [
        f"{PILOT}: removed from the app in Intune during the release; not assigned again"]
    assert intune.violations == []


async def test_a_ring_with_a_low_install_success_rate_stops_the_release(time_skipping_env, intune, unique):
    intune.failing[DEPARTMENTS] = 0.25  # 10 of the 40 devices fail: 40 of 50 installed, 80 %
    final = await run(time_skipping_env, intune_release(f"intune-fail-{unique}"), f"intune-{unique}", intune)
    assert final.phase is Phase.DEGRADED and final.reason == "AnalysisFailed"
    assert "successRate" in final.message and "back to the 1 from before the release" in final.message
    assert intune.assigned_sets == [[HELPDESK, PILOT], [HELPDESK, PILOT, DEPARTMENTS], [HELPDESK]]
    assert intune.violations == []


def test_phases_must_be_rings_and_the_graph_models_refuse_what_graph_would(intune):
    with pytest.raises(SpecError) as error:
        intune_release("intune", [{"percent": 10, "bake": "1d"}])
    assert error.value.problems == ["spec.phases[0].percent: intune rolls out by rings: 10% is no ring's share "
                                    "(pilot 5%, departments 40%, everyone 100%)"]
    headers = {"Authorization": f"Bearer {intune.issue_token()}"}
    url = f"{intune.url}/v1.0/deviceAppManagement/mobileApps/{APP}/assign"
    for body, words in [
        ({"mobileAppAssignments": [{"intent": "mandatory", "target": {
            "@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": PILOT}}]}, "outside its type or enum"),
        ({"mobileAppAssignments": [{"intent": "required", "target": {
            "@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupID": PILOT}}]}, "unknown fields"),
    ]:
        answer = httpx.post(url, json=body, headers=headers)  # trusts $SSL_CERT_FILE: the stand-in's certificate
        assert answer.status_code == 400 and words in answer.json()["error"]["message"], answer.text
    assert len(intune.violations) == 2


async def test_the_reports_export_is_polled_until_it_completes(intune):
    from temporalio.testing import ActivityEnvironment

    intune.failing[PILOT] = 0.1
    a = IntuneActivities()
    from models.intune import AssignInput, IntuneChannel

    channel = IntuneChannel.model_validate({"appId": APP, "rings": RINGS})
    await asyncio.to_thread(ActivityEnvironment().run, a.assign, AssignInput(channel=channel, groups=[PILOT]))
    from activities.targets.intune import export_rows

    rows = await asyncio.to_thread(export_rows, a.api, "DeviceInstallStatusByApp", f"(ApplicationId eq '{APP}')",
                                   ["DeviceId", "AppInstallState"], 0.1)
    assert [r["AppInstallState"] for r in rows].count(2) == 1 and len(rows) == 10, "the enum's value, not its text"
    assert {r["AppInstallState_loc"] for r in rows} == {"Installed", "Failed"}, "the text beside it"
    job = intune.calls("/exportJobs", "POST")[0].json()
    assert job["select"] == ["DeviceId", "AppInstallState"] and job["localizationType"] == \
        "localizedValuesAsAdditionalColumn", "columns chosen and localization stated, never the defaults"
    assert len(intune.calls("exportJobs('")) == 2, "in progress on the first look, completed on the second"


def test_the_export_stand_in_is_strict_about_columns_and_localization(intune):
    headers = {"Authorization": f"Bearer {intune.issue_token()}"}
    url = f"{intune.url}/v1.0/deviceManagement/reports/exportJobs"
    job = {"reportName": "DeviceInstallStatusByApp", "filter": f"(ApplicationId eq '{APP}')", "format": "json"}
    assert httpx.post(url, json=job, headers=headers).status_code == 400, "no select: the default columns"
    assert httpx.post(url, json={**job, "select": ["AppInstallState_loc"]}, headers=headers).status_code == 400
    replaced = httpx.post(url, json={**job, "select": ["AppInstallState"],
                                     "localizationType": "replaceLocalizableValues"}, headers=headers).json()
    assert replaced["localizationType"] == "replaceLocalizableValues"
    assert intune.jobs[replaced["id"]]["columns"] == ["AppInstallState"], "text in place: no _loc column"
    assert len(intune.violations) == 1


async def test_a_worker_killed_after_a_ring_and_mid_phase_assigns_each_ring_once(
        dev_server, dev_client, intune, release_worker_processes, tmp_path, unique):
    release = store_release(f"intune-kill-{unique}", {"intune": {"appId": APP, "rings": RINGS}}, {"version": "2.0.0"},
                            [{"percent": 5, "bake": "1h"}, {"percent": 40, "bake": "1h"}])
    final = await killed_mid_phase(dev_server, dev_client, release_worker_processes, tmp_path, release,
                                   f"intune-kill-{unique}", after="assign_intune_app")
    assert final.phase is Phase.HEALTHY, final.message
    assert intune.assigned_sets == [[HELPDESK, PILOT], [HELPDESK, PILOT, DEPARTMENTS, "*"]], \
        "the retry found its ring assigned: sent once"
    assert intune.violations == []


async def test_abort_keeps_the_rings_assigned_and_adds_none(time_skipping_env, intune, unique):
    from models.approvals import AbortRequest
    from tests.store_helpers import reaches

    env, a = time_skipping_env, IntuneActivities()
    release = intune_release(f"intune-abort-{unique}")
    queue = f"intune-{unique}"
    async with store_worker(env.client, queue, [a.read_assignments, a.assign],
                            {"intuneInstalls": IntuneInstallsSource()}):
        handle = await env.client.start_workflow(StagedRelease.run, ReleaseInput(release=release),
                                                 id=release.rollout_id, task_queue=queue)
        await reaches(handle, lambda s: s.reason == "Baking", "the pilot ring baking")
        await handle.execute_update("abort", AbortRequest(by="oncall", reason="help desk load"))
        final = await handle.result()
    assert final.phase is Phase.DEGRADED and final.reason == "RolloutAborted"
    assert "the rings assigned stay (5% of the fleet)" in final.message
    assert intune.assigned_sets == [[HELPDESK, PILOT]] and intune.violations == []


KIOSK, USERS_ONLY = "0a1b2c3d-0000-4000-8000-000000000009", "0a1b2c3d-0000-4000-8000-000000000008"
LATE = "0a1b2c3d-0000-4000-8000-000000000007"
WIN32 = "#microsoft.graph.win32LobAppAssignmentSettings"
HELPDESK_SETTINGS = {"@odata.type": WIN32, "notifications": "hideAll", "deliveryOptimizationPriority": "foreground",
                     "restartSettings": {"gracePeriodInMinutes": 1440, "countdownDisplayBeforeRestartInMinutes": 15,
                                         "restartNotificationSnoozeDurationInMinutes": 240},
                     "installTimeSettings": {"useLocalTime": True, "startDateTime": "2026-11-01T09:00:00Z",
                                             "deadlineDateTime": None}}
BEFORE = [  # what an administrator made in the portal: more than one page of them
    {"@odata.type": "#microsoft.graph.mobileAppAssignment", "id": "helpdesk", "intent": "available", "target": {
        "@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": HELPDESK}, "settings": HELPDESK_SETTINGS},
    {"@odata.type": "#microsoft.graph.mobileAppAssignment", "id": "kiosks", "intent": "required", "target": {
        "@odata.type": "#microsoft.graph.exclusionGroupAssignmentTarget", "groupId": KIOSK}, "settings": None},
    {"@odata.type": "#microsoft.graph.mobileAppAssignment", "id": "users", "intent": "available", "target": {
        "@odata.type": "#microsoft.graph.allLicensedUsersAssignmentTarget"}, "settings": None},
    {"@odata.type": "#microsoft.graph.mobileAppAssignment", "id": "uninstall", "intent": "uninstall", "target": {
        "@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": USERS_ONLY}, "settings": None},
]


def as_read(assignments: list[dict]) -> list[str]:
    from activities.targets.intune.apptypes import canonical

    return sorted(canonical(a) for a in assignments)


async def test_every_assignment_the_app_had_is_kept_exactly_and_restored_exactly(time_skipping_env, intune, unique):
    """An exclusion stays an exclusion, all-users and uninstall targets stay, the helpdesk keeps its
    settings (more than a page of assignments, all read); a group an administrator adds during the
    release stays; going back takes out only the rings the release added."""
    intune.seed(APP, [dict(a) for a in BEFORE])
    intune.groups[KIOSK] = [f"dept-{n}" for n in range(10)]  # a quarter of the departments ring are kiosks
    intune.failing[DEPARTMENTS] = 0.5
    late = {"@odata.type": "#microsoft.graph.mobileAppAssignment", "intent": "available", "target": {
        "@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": LATE}}
    everyone = {"@odata.type": "#microsoft.graph.mobileAppAssignment", "intent": "available", "target": {
        "@odata.type": "#microsoft.graph.allDevicesAssignmentTarget"}}
    intune.portal_edits = [late, everyone]  # an administrator's additions while the pilot ring bakes (all devices:
    # the last ring's target, which the release never reached)
    final = await run(time_skipping_env, intune_release(f"intune-keep-{unique}"), f"intune-keep-{unique}", intune)
    assert final.phase is Phase.DEGRADED and final.reason == "AnalysisFailed", final.message
    kept = [HELPDESK, f"not {KIOSK}", "all users", USERS_ONLY]
    assert intune.assigned_sets == [kept + [PILOT], kept + [PILOT, LATE, "*", DEPARTMENTS], kept + [LATE, "*"]], \
        intune.assigned_sets
    assert as_read(intune.apps[APP]) == as_read(BEFORE + [late, everyone]), \
        "restored exactly (types, intents, settings), the administrator's changes kept"
    sent = intune.calls("/assign", "POST")[1].json()["mobileAppAssignments"]
    assert as_read(sent[:4]) == as_read(BEFORE), "every ring re-sends the others exactly as read"
    pilot = [a for a in sent if a["target"].get("groupId") == PILOT][0]["settings"]
    assert pilot["@odata.type"] == WIN32 and pilot["installTimeSettings"]["useLocalTime"] is False
    deadline = datetime.fromisoformat(pilot["installTimeSettings"]["deadlineDateTime"].replace("Z", "+00:00"))
    assert deadline.utcoffset() == timedelta(0), "a UTC instant with useLocalTime false"
    measured = [m.value for r in final.analysis for m in r.measurements]
    assert json.loads(measured[-1]) == {"installed": 20, "failed": 20, "pending": 0, "successRate": 50.0}, \
        "40 devices: the 10 kiosks in the departments ring stayed excluded"
    assert len(intune.calls("/assignments", "GET")) >= 2 * 4 and intune.violations == []


async def test_a_ring_group_the_app_excludes_or_assigns_otherwise_stops_before_anything_is_assigned(
        time_skipping_env, intune, unique):
    intune.seed(APP, [{"id": "x", "intent": "required", "target": {
        "@odata.type": "#microsoft.graph.exclusionGroupAssignmentTarget", "groupId": PILOT}},
        {"id": "y", "intent": "available", "target": {
            "@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": DEPARTMENTS}}])
    final = await run(time_skipping_env, intune_release(f"intune-excl-{unique}"), f"intune-excl-{unique}", intune)
    assert final.phase is Phase.DEGRADED and "(nothing was published)" in final.message
    assert f"group {PILOT} is excluded from the app" in final.message
    assert f"group {DEPARTMENTS} is already assigned as 'available'" in final.message
    assert intune.assigned_sets == [] and intune.violations == []


VPP = {"@odata.type": "#microsoft.graph.iosVppAppAssignmentSettings", "useDeviceLicensing": True,
       "vpnConfigurationId": "3c0f8a52-1111-4222-8333-444455556666"}


@pytest.mark.parametrize("kind, settings", [("iosStoreApp", {"@odata.type": "#microsoft.graph.iosStoreAppAssignmentSettings"}),
                                            ("iosVppApp", VPP), ("windowsMobileMSI", None)])
async def test_a_new_ring_gets_the_settings_of_the_apps_type_or_the_app_is_refused(intune, kind, settings):
    """A ring's settings are of the app's type; where the app has an include assignment of the same intent,
    its settings (a VPP app's device licensing: with user licensing a device group installs nothing)."""
    from temporalio.exceptions import ApplicationError
    from temporalio.testing import ActivityEnvironment

    from models.intune import AssignInput, IntuneChannel

    licensed = [{"id": "l", "intent": "required", "settings": VPP, "target": {
        "@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": HELPDESK}}]
    intune.seed(APP, licensed if kind == "iosVppApp" else [], kind=kind)
    a, channel = IntuneActivities(), IntuneChannel.model_validate({"appId": APP, "rings": RINGS})
    if settings is None:
        with pytest.raises(ApplicationError, match=f"app {APP} is a {kind}; the channel assigns .*win32LobApp"):
            await asyncio.to_thread(ActivityEnvironment().run, a.read_assignments,
                                    AssignInput(channel=channel, groups=[PILOT]))
        assert intune.assigned_sets == []
        return
    await asyncio.to_thread(ActivityEnvironment().run, a.assign, AssignInput(channel=channel, groups=[PILOT]))
    ring = [x for x in intune.apps[APP] if x["target"].get("groupId") == PILOT][0]
    assert ring["settings"] == settings, "the type's settings (no Win32 notifications, no deadline), the app's own"
    assert intune.violations == []


async def test_a_next_page_on_another_host_is_never_followed(intune):
    from temporalio.exceptions import ApplicationError
    from temporalio.testing import ActivityEnvironment

    from localcluster.stores.standin import Reply
    from models.intune import AssignInput, IntuneChannel

    intune.page = lambda app, query: Reply(200, {"value": [], "@odata.nextLink": "https://graph.attacker.test/v1.0/x"})
    channel = IntuneChannel.model_validate({"appId": APP, "rings": RINGS})
    with pytest.raises(ApplicationError, match="next page is on another host"):
        await asyncio.to_thread(ActivityEnvironment().run, IntuneActivities().read_assignments,
                                AssignInput(channel=channel, groups=[]))
