"""The generic MDM channel against a loopback stand-in of the platform's own MDM API (its OpenAPI
description in devtools/localcluster/stores/mdm-openapi.yaml, every request and answer checked with
openapi-core): package, app-protection and deployment policies, rings of groups, a pause that holds
installs, the assignment status read by a web-provider gate."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import httpx
import pytest
from temporalio import activity

from activities.analysis.web import WebProvider
from activities.targets.mdm import MdmActivities
from localcluster.stores.mdm import MdmStandIn
from models.approvals import AbortRequest, HaltRequest, ResumeRequest
from models.mdm import MdmDeployInput, MdmStatus
from models.release import ReleaseInput
from models.status import Phase
from tests.helpers import eventually, skip_time
from tests.store_helpers import assert_history_clean, killed_mid_phase, reaches, store_release, store_worker
from workflows.release import StagedRelease

RINGS = [{"name": "pilot", "groups": ["pilot"], "share": 10}, {"name": "departments", "groups": ["sales", "ops"],
                                                                "share": 50},
         {"name": "everyone", "allDevices": True, "share": 100}]
PHASES = [{"percent": 10, "bake": "1d", "analysis": {"templates": [{"templateName": "installs"}]}},
          {"percent": 50, "bake": "1d", "analysis": {"templates": [{"templateName": "installs"}]}}]


@pytest.fixture
def mdm(monkeypatch):
    standin = MdmStandIn(token="mdm-api-token-0123456789")
    standin.start()
    monkeypatch.setenv("DURABLE_ROLLOUTS_MDM_TOKEN", standin.token)
    monkeypatch.setenv("ROLLOUT_SECRET_MDM_TOKEN", standin.token)
    standin.groups = {"pilot": [f"p{n}" for n in range(5)], "sales": [f"s{n}" for n in range(10)],
                      "ops": [f"o{n}" for n in range(10)], "others": [f"x{n}" for n in range(25)]}
    yield standin
    standin.stop()


def mdm_release(name: str, server: str, tmp_path, phases=PHASES, **spec):
    package = tmp_path / "shop-2.0.0.pkg"
    package.write_bytes(b"PKG" * 50_000)
    gate = {"templates": [{"name": "installs", "metrics": [{
        "name": "install-success", "successCondition": "result >= 95",
        "provider": {"web": {"url": f"{server}/api/v1/deployment-policies/{name}/status",
                             "jsonPath": "totals.successRate",
                             "headers": {"Authorization": "Bearer {{secrets.mdmToken}}"}}}}]}]}
    channel = {"server": server, "policy": name, "packageName": "com.example.shop", "rings": RINGS,
               "network": "wifiOnly", "deadline": "48h", "protection": {"minimumOsVersion": "14.0"}}
    return store_release(name, {"mdm": channel}, {"file": str(package), "version": "2.0.0"}, phases,
                         analysis=gate, **spec)


def activities() -> list:
    a = MdmActivities()
    return [a.deploy, a.set_groups]


async def test_rings_of_groups_each_gated_on_the_assignment_status(time_skipping_env, mdm, tmp_path, unique):
    env = time_skipping_env
    release = mdm_release(f"shop-{unique}", mdm.url, tmp_path)
    queue = f"mdm-{unique}"
    async with store_worker(env.client, queue, activities(), {"web": WebProvider(httpx.Client())}):
        handle = await env.client.start_workflow(StagedRelease.run, ReleaseInput(release=release),
                                                 id=release.rollout_id, task_queue=queue)
        final = await handle.result()
        await assert_history_clean(handle, mdm, mdm.token)
    assert final.phase is Phase.HEALTHY, final.message
    assert mdm.group_sets == [["pilot"], ["pilot", "sales", "ops"], ["pilot", "sales", "ops", "*"]]
    assert len(mdm.packages) == 1 and len(mdm.calls("/api/v1/packages", "POST")) == 1
    policy = next(iter(mdm.policies.values()))
    assert (policy["network"], policy["deadlineHours"], policy["installBehavior"]) == ("wifiOnly", 48, "installAndReplace")
    protection = next(iter(mdm.protections.values()))
    assert protection["id"] == policy["protectionPolicyId"] and protection["minimumOsVersion"] == "14.0"
    assert mdm.status(policy)["totals"] == {"targeted": 50, "installed": 50, "failed": 0, "pending": 0,
                                            "successRate": 100.0}
    assert mdm.violations == []


async def test_an_abort_during_the_deploy_says_what_may_stay_on_the_server(own_time_skipping_env, mdm, tmp_path, unique):
    """The package upload is slow; an abort while it runs ends the release at once, and the end says the
    package and policy the deploy was making may be on the server (the answer was never read)."""
    env = own_time_skipping_env
    mdm.upload_delay = 3
    queue = f"mdm-{unique}"
    async with store_worker(env.client, queue, activities(), {"web": WebProvider(httpx.Client())}):
        release = mdm_release(f"cut-{unique}", mdm.url, tmp_path)
        handle = await env.client.start_workflow(StagedRelease.run, ReleaseInput(release=release),
                                                 id=release.rollout_id, task_queue=queue)
        await eventually(lambda: mdm.calls("/api/v1/packages", "GET"), what="the deploy under way")
        await handle.execute_update("abort", AbortRequest(by="oncall", reason="wrong build"))
        aborted = await handle.result()
    assert aborted.phase is Phase.DEGRADED and aborted.message.endswith(
        f"(nothing was published; the package and deployment policy {release.spec.channel.mdm.policy} may stay on "
        "the MDM server (the release ended while they were deployed): look there)"), aborted.message


async def test_a_halt_pauses_the_policy_and_a_failing_ring_goes_back(time_skipping_env, mdm, tmp_path, unique):
    env = time_skipping_env
    queue = f"mdm-{unique}"
    async with store_worker(env.client, queue, activities(), {"web": WebProvider(httpx.Client())}):
        release = mdm_release(f"halt-{unique}", mdm.url, tmp_path)
        handle = await env.client.start_workflow(StagedRelease.run, ReleaseInput(release=release),
                                                 id=release.rollout_id, task_queue=queue)
        await reaches(handle, lambda s: s.reason == "Baking", "phase 1 baking")
        await handle.execute_update("halt", HaltRequest(by="oncall", comment="battery drain"))
        await eventually(lambda: mdm.states == ["paused"], what="the policy paused")
        await handle.execute_update("resume", ResumeRequest(by="oncall"))
        await eventually(lambda: mdm.states == ["paused", "active"], what="the policy active again")
        await handle.execute_update("abort", AbortRequest(by="oncall", reason="enough"))
        aborted = await handle.result()
        assert aborted.phase is Phase.DEGRADED and "paused with its rings" in aborted.message
        assert mdm.states[-1] == "paused" and mdm.group_sets[-1] == ["pilot"]

        mdm.failing["sales"] = 0.5  # 5 of 25 devices fail in ring 2: 80 %
        second = mdm_release(f"fail-{unique}", mdm.url, tmp_path)  # the same package: already on the server
        handle = await env.client.start_workflow(StagedRelease.run, ReleaseInput(release=second),
                                                 id=second.rollout_id, task_queue=queue)
        await skip_time(env, timedelta(days=2, hours=1))
        final = await handle.result()
    assert final.phase is Phase.DEGRADED and final.reason == "AnalysisFailed"
    assert f"policy fail-{unique} unassigned and paused" in final.message
    assert mdm.group_sets[-1] == [] and mdm.states[-1] == "paused"
    assert len(mdm.packages) == 1, "the same package bytes: uploaded once for both releases"
    assert mdm.violations == []


async def test_a_worker_killed_after_deploying_and_mid_phase_uploads_once(
        dev_server, dev_client, mdm, release_worker_processes, tmp_path, unique):
    release = mdm_release(f"kill-{unique}", mdm.url, tmp_path, [{"percent": 10, "bake": "1h"}])
    final = await killed_mid_phase(dev_server, dev_client, release_worker_processes, tmp_path, release,
                                   f"mdm-kill-{unique}", after="deploy_mdm_policy")
    assert final.phase is Phase.HEALTHY, final.message
    assert len(mdm.calls("/api/v1/packages", "POST")) == 1 and len(mdm.policies) == 1
    assert mdm.group_sets == [["pilot"], ["pilot", "sales", "ops", "*"]]
    assert mdm.violations == []
