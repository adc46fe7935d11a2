"""The Microsoft Store channel against an HTTPS loopback stand-in of Partner Center's submission API and
Azure AD (devtools/localcluster/stores/msstore.py): msal signs in with client credentials, the real activities
create, upload, commit and roll out, under the staged-release workflow."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx
import pytest
from temporalio.client import WorkflowUpdateFailedError

from activities.analysis.web import WebProvider
from activities.targets.msstore import MicrosoftStoreActivities
from localcluster.faults import read_journal
from localcluster.stores.azuread import credentials_file
from localcluster.stores.msstore import MicrosoftStoreStandIn
from localcluster.stores.tls import loopback_certificate, server_context
from models.approvals import AbortRequest, HaltRequest
from models.documents import SpecError
from models.release import ReleaseInput
from models.status import Phase
from tests.helpers import eventually, skip_time
from tests.store_helpers import (
    HealthStandIn,
    assert_history_clean,
    killed_mid_phase,
    reaches,
    skipping_clock,
    store_release,
    store_worker,
)
from workflows.release import StagedRelease

APP = "9NBLGGH4R315"
FLIGHT = "2e6d4f8a-1b3c-4d5e-8f9a-0b1c2d3e4f5a"
PHASES = [{"percent": 10, "bake": "1d"}, {"percent": 25, "bake": "1d"}, {"percent": 50, "bake": "1d"}]


@pytest.fixture
async def store(tmp_path, monkeypatch, time_skipping_env):
    cert, key = loopback_certificate(tmp_path / "tls")
    (tmp_path / "secrets").mkdir()  # not beside the artifacts: the worker refuses an artifact next to a key
    credentials = tmp_path / "secrets" / "partner-center.json"
    standin = MicrosoftStoreStandIn(credentials_file(credentials))
    standin.tls = server_context(cert, key)
    standin.clock = skipping_clock(time_skipping_env, asyncio.get_running_loop())
    standin.start()
    for name, value in {"SSL_CERT_FILE": str(cert), "REQUESTS_CA_BUNDLE": str(cert),
                        "DURABLE_ROLLOUTS_MSSTORE_CREDENTIALS": str(credentials),
                        "DURABLE_ROLLOUTS_MSSTORE_API": standin.url,
                        "DURABLE_ROLLOUTS_AZURE_AUTHORITY": standin.url}.items():
        monkeypatch.setenv(name, value)
    standin.seed(APP)
    standin.seed(APP, FLIGHT)
    yield standin
    standin.stop()


def package(tmp_path, version="2.0.0.0"):
    path = tmp_path / f"Shop_{version}_x64.msixupload"
    path.write_bytes(b"MSIX" + bytes(range(256)) * 2000)
    return path


def ms_release(name: str, path, phases=PHASES, flight: str | None = None, replace=(), **spec):
    channel = {"applicationId": APP, "certificationPoll": "30m", **({"flightId": flight} if flight else {}),
               **({"replaceArchitectures": list(replace)} if replace else {})}
    return store_release(name, {"microsoftStore": channel}, {"file": str(path), "version": "2.0.0.0"}, phases, **spec)


def activities() -> list:
    a = MicrosoftStoreActivities()
    return [a.create_submission, a.read_submission, a.set_rollout]


@pytest.mark.parametrize("flight", [None, FLIGHT], ids=["app", "flight"])
async def test_a_package_rollout_raised_phase_by_phase_and_finalized(time_skipping_env, store, tmp_path, unique, flight):
    env = time_skipping_env
    store.seed(APP, flight, mode="Manual")  # the published submission waited for a person: this one must not
    release = ms_release(f"ms-{unique}", package(tmp_path), flight=flight, replace=() if flight else ("x64",))
    queue = f"ms-{unique}"
    async with store_worker(env.client, queue, activities()):
        handle = await env.client.start_workflow(StagedRelease.run, ReleaseInput(release=release),
                                                 id=release.rollout_id, task_queue=queue)
        waiting = await reaches(handle, lambda s: s.reason == "InReview", "waiting for certification")
        assert waiting.message.startswith("waiting for certification since ")
        final = await handle.result()
        await assert_history_clean(handle, store, *store.clients.values())
    assert final.phase is Phase.HEALTHY, final.message
    assert store.rollout_calls == [("updatepackagerolloutpercentage", "25"), ("updatepackagerolloutpercentage", "50"),
                                   ("finalizepackagerollout", "100")]
    key = store.key(APP, flight)
    published = store.submissions[store.apps[key]["published"]]
    packages = published["resource"]["flightPackages" if flight else "applicationPackages"]
    assert [(p["fileName"], p["fileStatus"]) for p in packages] == [
        ("Shop_1.0.0.0_x64.msixupload", "Uploaded" if flight else "PendingDelete"),
        ("Shop_2.0.0.0_x64.msixupload", "PendingUpload")], "replaced only when its architecture is named"
    assert published["resource"]["targetPublishMode"] == "Immediate"
    assert published["rollout"]["packageRolloutStatus"] == "PackageRolloutComplete"
    assert store.uploads == 1 and store.violations == []
    assert len(store.calls("/oauth2/v2.0/token")) == 1, "msal signed in once and kept the token"


async def test_a_failed_gate_halts_the_package_rollout_and_halt_is_refused(time_skipping_env, store, tmp_path, unique):
    env = time_skipping_env
    health = HealthStandIn(crash_free=97.0)
    health.start()
    phases = [dict(p) for p in PHASES]
    phases[1]["analysis"] = {"templates": [{"templateName": "crash-free"}]}
    release = ms_release(f"ms-gate-{unique}", package(tmp_path), phases, analysis=health.gate(99.5))
    queue = f"ms-{unique}"
    try:
        async with store_worker(env.client, queue, activities(), {"web": WebProvider(httpx.Client())}):
            handle = await env.client.start_workflow(StagedRelease.run, ReleaseInput(release=release),
                                                     id=release.rollout_id, task_queue=queue)
            await skip_time(env, timedelta(hours=4))
            await reaches(handle, lambda s: s.reason == "Baking", "phase 1 baking")
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await handle.execute_update("halt", HaltRequest(by="oncall"))
            assert refused.value.cause.message == ("halt: the Microsoft Store cannot pause a package rollout "
                                                "(haltpackagerollout is final): `rollout rollback` halts it for good")
            final = await handle.result()
    finally:
        health.stop()
    assert final.phase is Phase.DEGRADED and final.reason == "AnalysisFailed"
    assert "package rollout halted at 25%: new customers get the previous packages" in final.message
    assert store.rollout_calls == [("updatepackagerolloutpercentage", "25"), ("haltpackagerollout", "25")]
    assert store.violations == []

    with pytest.raises(SpecError) as error:
        ms_release("ms", package(tmp_path), onFailure="halt")
    assert error.value.problems == ["spec.onFailure: the Microsoft Store cannot pause a package rollout "
                                    "(haltpackagerollout is final): use rollback"]


async def test_a_worker_killed_after_the_upload_and_mid_phase_uploads_once(
        dev_server, dev_client, store, release_worker_processes, tmp_path, unique):
    store.clock, store.certification_seconds = __import__("time").time, 3
    release = store_release(f"ms-kill-{unique}", {"microsoftStore": {"applicationId": APP, "certificationPoll": "1s"}},
                            {"file": str(package(tmp_path)), "version": "2.0.0.0"}, [{"percent": 20, "bake": "1h"},
                                                                                   {"percent": 60, "bake": "1h"}])
    final = await killed_mid_phase(dev_server, dev_client, release_worker_processes, tmp_path, release,
                                   f"ms-kill-{unique}", after="create_store_submission")
    assert final.phase is Phase.HEALTHY, final.message
    assert store.uploads == 1 and len([r for r in store.calls("/submissions", "POST")
                                       if r.path.endswith("/submissions")]) == 1, "one submission, one upload"
    assert store.rollout_calls == [("finalizepackagerollout", "100")]
    assert store.violations == []


async def test_the_cli_publishes_refuses_a_halt_and_promotes(dev_server, store, release_worker_processes, tmp_path,
                                                             unique):
    """The same CLI as every release: `rollout release publish`, `halt` refused in one line with exit 2
    (InvalidDecision), `promote --full`, `status --json`."""
    import os
    import subprocess
    import sys

    import yaml

    store.clock = __import__("time").time
    store.certification_seconds = 2
    env = {**os.environ, "TEMPORAL_ADDRESS": dev_server.address, "ROLLOUT_USER": "ci"}
    queue = f"ms-cli-{unique}"
    release_worker_processes(dev_server.address, queue, env={"ROLLOUT_USER": "ci"})
    document = tmp_path / "windows.yaml"
    document.write_text(yaml.safe_dump({
        "apiVersion": "rollouts.durable.dev/v1alpha1", "kind": "Release",
        "metadata": {"name": f"win-{unique}", "environment": "test"},
        "spec": {"artifact": {"file": str(package(tmp_path)), "version": "2.0.0.0"},
                 "channel": {"microsoftStore": {"applicationId": APP, "certificationPoll": "1s"}},
                 "phases": [{"percent": 20, "bake": "1h"}, {"percent": 60, "bake": "1h"}]}}))

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "starters.cli", *args], env=env, capture_output=True, text=True,
                              timeout=120)

    rid = f"rollout/test/win-{unique}"
    started = cli("release", "publish", "-f", str(document), "--task-queue", queue)
    assert started.returncode == 0, started.stderr

    async def baking():
        shown = cli("status", rid, "--json")
        return json.loads(shown.stdout) if shown.returncode == 0 and json.loads(shown.stdout)["reason"] == "Baking" \
            else None

    status = await eventually(baking, timeout=90, what="certified and baking at 20%")
    assert status["exposure"]["observed"] == 20 and status["exposure"]["unit"] == "userFraction"
    refused = cli("halt", rid, "--comment", "tickets")
    assert refused.returncode == 2 and refused.stderr.strip().endswith(
        "halt: the Microsoft Store cannot pause a package rollout (haltpackagerollout is final): "
        "`rollout rollback` halts it for good"), refused.stderr
    assert "Traceback" not in refused.stderr
    promoted = cli("promote", rid, "--full")
    assert promoted.returncode == 0, promoted.stderr
    done = cli("status", rid, "--watch", "--timeout", "60")
    assert done.returncode == 0, done.stdout + done.stderr
    assert store.rollout_calls == [("finalizepackagerollout", "100")]
    assert store.violations == []


async def test_abort_leaves_the_package_rollout_where_it_is(time_skipping_env, store, tmp_path, unique):
    env = time_skipping_env
    release = ms_release(f"ms-abort-{unique}", package(tmp_path))
    queue = f"ms-{unique}"
    async with store_worker(env.client, queue, activities()):
        handle = await env.client.start_workflow(StagedRelease.run, ReleaseInput(release=release),
                                                 id=release.rollout_id, task_queue=queue)
        await skip_time(env, timedelta(hours=4))
        await reaches(handle, lambda s: s.reason == "Baking", "certified, baking at 10%")
        await handle.execute_update("abort", AbortRequest(by="oncall", reason="support tickets"))
        final = await handle.result()
    assert final.phase is Phase.DEGRADED and final.reason == "RolloutAborted"
    assert "the package rollout stays at 10%" in final.message
    published = store.submissions[store.apps[APP]["published"]]
    assert published["rollout"]["packageRolloutStatus"] == "PackageRolloutInProgress"
    assert published["rollout"]["packageRolloutPercentage"] == 10 and store.apps[APP]["pending"] is None
    assert store.rollout_calls == [] and store.violations == []


async def test_a_multi_architecture_app_keeps_its_other_architectures_packages(time_skipping_env, store, tmp_path,
                                                                               unique):
    env = time_skipping_env
    store.seed(APP, packages=(("Shop_1.0.0.0_x64.msixupload", "x64"), ("Shop_1.0.0.0_arm64.msixupload", "ARM64")))
    release = ms_release(f"ms-arch-{unique}", package(tmp_path), [{"percent": 50, "bake": "1d"}], replace=("x64",))
    async with store_worker(env.client, f"ms-{unique}", activities()):
        handle = await env.client.start_workflow(StagedRelease.run, ReleaseInput(release=release),
                                                 id=release.rollout_id, task_queue=f"ms-{unique}")
        final = await handle.result()
    assert final.phase is Phase.HEALTHY, final.message
    packages = store.submissions[store.apps[APP]["published"]]["resource"]["applicationPackages"]
    assert {p["fileName"]: p["fileStatus"] for p in packages} == {
        "Shop_1.0.0.0_x64.msixupload": "PendingDelete", "Shop_1.0.0.0_arm64.msixupload": "Uploaded",
        "Shop_2.0.0.0_x64.msixupload": "PendingUpload"}
    assert store.violations == []


async def test_a_submission_held_for_publication_in_partner_center_is_waited_on_saying_so(
        time_skipping_env, store, tmp_path, unique):
    env = time_skipping_env
    store.held = True  # someone set targetPublishMode to Manual in Partner Center after the channel's PUT
    release = ms_release(f"ms-held-{unique}", package(tmp_path), [{"percent": 10, "bake": "1h"}])
    async with store_worker(env.client, f"ms-{unique}", activities()):
        handle = await env.client.start_workflow(StagedRelease.run, ReleaseInput(release=release),
                                                 id=release.rollout_id, task_queue=f"ms-{unique}")
        await skip_time(env, timedelta(hours=4))
        held = await reaches(handle, lambda s: "PendingPublication" in s.message, "certified and held")
        assert "(PendingPublication: certified and held: publish it in Partner Center" in held.message
        assert store.rollout_calls == [], "nothing raised before it is published"
        store.held = False  # published in Partner Center
        final = await handle.result()
    assert final.phase is Phase.HEALTHY, final.message
    assert store.rollout_calls == [("finalizepackagerollout", "100")] and store.violations == []


async def test_a_package_over_64_mib_goes_up_in_blocks_and_a_retry_sends_only_what_is_missing(store, tmp_path):
    """One Put Blob at the link's service version (its sv, in the stricter of Microsoft's two readings)
    takes 64 MiB at most (the stand-in refuses more, as Azure does); the channel sends 4 MiB blocks and commits a
    block list; a second upload after one that died sends only the blocks the blob does not hold."""
    import os

    from temporalio.testing import ActivityEnvironment

    from activities.targets.msstore.blob import BLOCK, package_zip, upload
    from activities.targets.storeapi import StoreApi

    big = tmp_path / "Shop_2.0.0.0_x64.msixupload"
    big.write_bytes(os.urandom(65 * 1024 * 1024))  # incompressible: the zip is over 64 MiB too
    sid = store.create(APP, None).body["id"]
    url = store.submissions[sid]["resource"]["fileUploadUrl"]
    refused = httpx.put(url, content=big.read_bytes(), headers={"x-ms-blob-type": "BlockBlob", "x-ms-version":
                                                                  "2019-12-12"}, timeout=60)
    assert refused.status_code == 413, "Azure's limit for one Put Blob at the link's sv (the stricter reading)"

    class Dying(StoreApi):  # the worker dies after three blocks
        blocks = 0

        def call(self, method, path, what, **kwargs):
            if "comp=block&" in path:
                if self.blocks == 3:
                    raise RuntimeError("killed")
                self.blocks += 1
            return super().call(method, path, what, **kwargs)

    api = StoreApi("Microsoft Store", store.url, None)
    with package_zip(big) as content:
        size = content.seek(0, 2)
        expected = -(-size // BLOCK)
        with pytest.raises(RuntimeError):
            await asyncio.to_thread(ActivityEnvironment().run, upload, Dying("Microsoft Store", store.url, None),
                                    url, content)
        assert await asyncio.to_thread(ActivityEnvironment().run, upload, api, url, content) is True
        assert await asyncio.to_thread(ActivityEnvironment().run, upload, api, url, content) is False, \
            "the blob holds these bytes: nothing sent"
    writes = store.storage.puts
    assert [op for op, _ in writes].count("block") == expected, "three blocks sent once, the rest after"
    assert [op for op, _ in writes if op != "block"] == ["blocklist"] and max(n for op, n in writes
                                                                            if op == "block") <= BLOCK
    assert store.storage.data(sid) is not None and len(store.storage.data(sid)) == size
    assert store.violations == [], store.violations


async def test_an_abort_during_certification_says_the_committed_submission_stays_and_publishes_itself(
        time_skipping_env, store, tmp_path, unique):
    env = time_skipping_env
    release = ms_release(f"ms-abort-cert-{unique}", package(tmp_path))
    async with store_worker(env.client, f"ms-{unique}", activities()):
        handle = await env.client.start_workflow(StagedRelease.run, ReleaseInput(release=release),
                                                 id=release.rollout_id, task_queue=f"ms-{unique}")
        await reaches(handle, lambda s: s.reason == "InReview", "in certification")
        await handle.execute_update("abort", AbortRequest(by="oncall", reason="wrong package"))
        final = await handle.result()
    assert final.phase is Phase.DEGRADED and "nothing was published; submission " in final.message, final.message
    assert "stays in Partner Center" in final.message and "at 10% that no release watches — delete it there" \
        in final.message
    assert store.violations == []
