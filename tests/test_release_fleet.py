"""A staged release end to end on the dev server: real TUF metadata in moto's S3, a fleet of 100,000
simulated devices deciding with rollout-agent's own eligibility code from what python-tuf verified,
real agents doing the whole check/download/verify/install path, and real Prometheus scraping the
fleet for the gate."""

from __future__ import annotations

import asyncio
import threading

import pytest
from rollout_agent.agent import AgentError
from rollout_agent.install import tree_digest

from activities.analysis import default_providers
from localcluster.fleet import Fleet
from localcluster.prometheus import PrometheusServer
from localcluster.updates import make_artifact
from models.approvals import HaltRequest, PromoteRequest, ResumeRequest
from models.release import ReleaseInput
from models.status import Phase, RolloutStatus
from models.updater import PublishInput, ReleaseState, UploadInput
from tests.helpers import eventually
from tests.release_helpers import device, fleet, measure_activity, release_document, release_worker
from workflows.release import StagedRelease

PLATFORM = "linux-x86_64"
SHARE_TOLERANCE = 1.0  # percentage points


async def at_phase(handle, index: int, reason: str = "Baking") -> RolloutStatus:
    async def check():
        s = await handle.query("status", result_type=RolloutStatus)
        return s if s.current_step == index and s.reason == reason else None

    return await eventually(check, timeout=60, what=f"phase {index + 1} {reason}")


async def settled_share(fleet: Fleet, version: str) -> float:
    """The share once every online device has acted on the channel's current state."""
    await asyncio.to_thread(fleet.wait_ticks, 12)
    return fleet.share(version)


async def test_fleet_share_follows_each_phase_and_halt_keeps_the_cohort(dev_client, s3_server, updater_setup, fleet,
                                                                        tmp_path, unique):
    phases = [{"percent": p, "bake": "1h"} for p in (1, 5, 10, 25, 50)]
    observe = {"prometheus": {"address": fleet.prometheus_url,
                              "query": '100 * sum(fleet_devices{version="{{args.version}}"}) / sum(fleet_devices)'}}
    release = release_document(f"fleet-{unique}", updater_setup, make_artifact(tmp_path, "2.0.0"), "2.0.0", phases,
                               observe=observe)
    queue = f"release-{unique}"
    shares = {}
    async with release_worker(dev_client, queue, s3_server, updater_setup,
                              extra=[measure_activity(default_providers())]):
        handle = await dev_client.start_workflow(StagedRelease.run, ReleaseInput(release=release, requested_by="ci"),
                                                 id=f"{release.rollout_id}-{unique}", task_queue=queue)
        for index, percent in enumerate((1, 5, 10)):
            s = await at_phase(handle, index)
            assert s.exposure.desired == percent
            shares[percent] = await settled_share(fleet, "2.0.0")
            if percent == 10:
                break
            await handle.execute_update("promote", PromoteRequest(by="rm"))
        cohort = fleet.on("2.0.0")

        await handle.execute_update("halt", HaltRequest(by="oncall"))
        await at_phase(handle, 2, "Halted")
        await asyncio.to_thread(fleet.wait_ticks, 4)
        halted_at = fleet.on("2.0.0")
        await asyncio.to_thread(fleet.wait_ticks, 12)
        assert fleet.on("2.0.0") == halted_at, "a halted release gets no new installs"
        await handle.execute_update("resume", ResumeRequest(by="oncall"))
        await at_phase(handle, 2)
        await handle.execute_update("promote", PromoteRequest(by="rm"))
        await at_phase(handle, 3)
        shares[25] = await settled_share(fleet, "2.0.0")
        assert cohort <= fleet.on("2.0.0"), "resume goes on with the same devices"
        await handle.execute_update("promote", PromoteRequest(by="rm", full=True))
        final: RolloutStatus = await handle.result()
    assert final.phase is Phase.HEALTHY
    observed = [float(h.detail.split("%")[0]) for h in final.history if h.event == "observed"]
    assert len(observed) == 5 and abs(observed[0] - 1) <= 1 and abs(observed[1] - 5) <= 1, observed  # 4 phase ends, 100%
    assert final.exposure.source == "measured (spec.observe)"
    shares[100] = await settled_share(fleet, "2.0.0")
    errors = {p: round(abs(share - p), 2) for p, share in shares.items()}
    print(f"fleet share error, percentage points: {errors}")
    assert all(e <= SHARE_TOLERANCE for e in errors.values()), shares


async def test_a_release_that_crashes_more_is_halted_by_the_gate_and_rolled_back(dev_client, s3_server, updater_setup,
                                                                                 fleet, tmp_path, unique):
    fleet.crash_rates = {"1.0.0": 0.0005, "3.0.0": 0.01}
    template = {"name": "crash-rate", "metrics": [{
        "name": "crashes-vs-previous", "count": 3, "interval": "2s", "failureLimit": 0,
        "successCondition": "result[0] < 3",
        "provider": {"prometheus": {"address": fleet.prometheus_url, "emptyResult": "inconclusive", "query": (
            '(sum(rate(fleet_crashes_total{version="3.0.0"}[10s])) / sum(fleet_devices{version="3.0.0"}))'
            ' / (sum(rate(fleet_crashes_total{version!="3.0.0"}[10s])) / sum(fleet_devices{version!="3.0.0"}))')}}}]}
    release = release_document(
        f"crash-{unique}", updater_setup, make_artifact(tmp_path, "3.0.0"), "3.0.0",
        [{"percent": 50, "bake": "8s", "analysis": {"templates": [{"templateName": "crash-rate"}]}}, {"percent": 100}],
        analysis={"templates": [template]})
    agents = [device(updater_setup, tmp_path / "agents", f"real-{n:02d}", telemetry=fleet.report_url) for n in range(20)]
    for agent in agents:
        assert agent.update()[1].ok  # on 1.0.0
    before = {a.config.device_id: tree_digest(a.installation.current.resolve()) for a in agents}
    took: set[str] = set()
    stop = threading.Event()

    def real_devices() -> None:
        while not stop.is_set():
            for agent in agents:
                try:
                    check, outcome = agent.update()
                except AgentError:
                    continue
                if outcome is not None and outcome.ok and outcome.version == "3.0.0":
                    took.add(agent.config.device_id)
                if agent.installation.installed_version() == "3.0.0":  # it crashes: its crash handler reports
                    agent.reporter.crash("3.0.0", "segfault in the renderer")
            stop.wait(0.3)

    runner = threading.Thread(target=real_devices, daemon=True)
    runner.start()
    queue = f"release-{unique}"
    try:
        async with release_worker(dev_client, queue, s3_server, updater_setup,
                                  extra=[measure_activity(default_providers())]):
            handle = await dev_client.start_workflow(StagedRelease.run, ReleaseInput(release=release),
                                                     id=f"{release.rollout_id}-{unique}", task_queue=queue)
            final: RolloutStatus = await handle.result()
        assert (final.phase, final.reason) == (Phase.DEGRADED, "AnalysisFailed"), final.message
        assert "back on 1.0.0" in final.message
        assert final.analysis[0].phase == "Failed" and final.analysis[0].measurements
        await eventually(lambda: fleet.share("3.0.0") == 0, timeout=30, what="every device back on 1.0.0")
        await eventually(lambda: all(a.installation.installed_version() == "1.0.0" for a in agents), timeout=30,
                         what="the real agents back on 1.0.0")
    finally:
        stop.set()
        runner.join(30)
    assert took, "some real agents were in the 50% cohort and took 3.0.0"
    assert fleet.real_crashes >= len(took), "their crash beacons reached the collector"
    for agent in agents:  # back on the previous version, byte for byte
        assert tree_digest(agent.installation.current.resolve()) == before[agent.config.device_id]
