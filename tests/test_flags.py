"""The flag channel: a staged release of a flag variant, written to a flagd flag-definition file and
evaluated by applications through the real OpenFeature SDK + flagd provider in FILE mode."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext

from activities.analysis import default_providers
from models.approvals import PromoteRequest
from models.release import ReleaseInput, parse_release
from models.status import Phase, RolloutStatus
from tests.helpers import eventually
from tests.release_helpers import measure_activity, release_worker
from workflows.release import StagedRelease

USERS = [f"user-{n:05d}" for n in range(10_000)]


class Application:
    """An application reading the flag through OpenFeature (its own provider domain)."""

    def __init__(self, path, domain: str) -> None:
        api.set_provider(FlagdProvider(resolver_type=ResolverType.FILE, offline_flag_source_path=str(path),
                                       deadline_ms=100), domain)
        self.client, self.domain = api.get_client(domain), domain

    def enabled(self) -> set[str]:
        return {u for u in USERS
                if self.client.get_boolean_value("new-checkout", False, EvaluationContext(targeting_key=u))}

    async def share_near(self, percent: float) -> set[str]:
        """The users the flag is on for, once the provider has read the file for this phase: two passes
        over the users in a row must agree (a pass the provider's reload falls into mixes two definitions)."""
        async def check():
            on = await asyncio.to_thread(self.enabled)
            again = await asyncio.to_thread(self.enabled)
            return on if on == again and abs(100 * len(on) / len(USERS) - percent) <= 1.0 else None

        return await eventually(check, timeout=20, interval=0.3, what=f"{percent}% of users")


def flag_release(name: str, path, phases: list[dict], **spec) -> object:
    return parse_release({
        "apiVersion": "rollouts.durable.dev/v1alpha1", "kind": "Release",
        "metadata": {"name": name, "environment": "test"},
        "spec": {"artifact": {"variant": "on"}, "channel": {"flag": {"file": str(path), "flag": "new-checkout"}},
                 "phases": phases, **spec}})


async def at_phase(handle, index: int) -> RolloutStatus:
    async def check():
        s = await handle.query("status", result_type=RolloutStatus)
        return s if s.current_step == index and s.reason == "Baking" else None

    return await eventually(check, timeout=30, what=f"phase {index + 1} baking")


class Projection:
    """A document copied into the file an application's flagd provider reads, as a sidecar syncing an
    S3 object or the kubelet projecting a mounted ConfigMap does (`read` gives the bytes, or None)."""

    def __init__(self, read, path) -> None:
        self.read, self.path, self.stop = read, path, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Projection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(5)

    def _run(self) -> None:
        while not self.stop.wait(0.2):
            try:
                data = self.read()
            except Exception:  # noqa: BLE001 - not there yet: the next round
                continue
            if data is not None and (not self.path.exists() or self.path.read_bytes() != data):
                temporary = self.path.with_suffix(".tmp")
                temporary.write_bytes(data)
                temporary.replace(self.path)


async def ramp_10_50_100(client, release, queue: str, path) -> None:
    """Run the 10 % → 50 % release, reading each share through OpenFeature from `path`."""
    handle = await client.start_workflow(StagedRelease.run, ReleaseInput(release=release), id=release.rollout_id,
                                         task_queue=queue)
    await at_phase(handle, 0)
    await eventually(path.exists, what="the projected file")
    app = Application(path, release.metadata.name)
    ten = await app.share_near(10)
    await handle.execute_update("promote", PromoteRequest(by="pm"))
    await at_phase(handle, 1)
    assert ten <= await app.share_near(50)
    await handle.execute_update("promote", PromoteRequest(by="pm", full=True))
    assert (await handle.result()).phase is Phase.HEALTHY


def refused_when_changed_meanwhile(backend, channel, change) -> None:
    """A write whose document changed since it was read (`change` does that) is refused, retryably."""
    from temporalio.exceptions import ApplicationError

    data, token = backend.load(channel)
    change(data)
    with pytest.raises(ApplicationError) as refused:
        backend.save(channel, data, token)
    assert refused.value.type == "FlagStoreConflict" and not refused.value.non_retryable


@pytest.fixture
def health():
    """A loopback health endpoint the gate asks; `health.ok` says what it answers."""
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = json.dumps({"ok": server.ok}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.ok = True
    server.url = f"http://127.0.0.1:{server.server_address[1]}/health"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


async def test_a_flag_ramp_evaluated_by_openfeature(time_skipping_env, s3_server, tmp_path, unique):
    path = tmp_path / "flags.json"
    release = flag_release(f"ramp-{unique}", path, [{"percent": p, "bake": "1h"} for p in (1, 10, 50)])
    queue = f"flags-{unique}"
    app = None
    seen: list[set[str]] = []
    async with release_worker(time_skipping_env.client, queue, s3_server, None):
        handle = await time_skipping_env.client.start_workflow(
            StagedRelease.run, ReleaseInput(release=release), id=release.rollout_id, task_queue=queue)
        for index, percent in enumerate((1, 10, 50)):
            await at_phase(handle, index)
            app = app or Application(path, f"ramp-{unique}")
            seen.append(await app.share_near(percent))
            await handle.execute_update("promote", PromoteRequest(by="pm"))
        final = await handle.result()
    assert final.phase is Phase.HEALTHY
    seen.append(await app.share_near(100))
    assert all(before <= after for before, after in zip(seen, seen[1:], strict=False)), "each phase a superset"
    definition = json.loads(path.read_text())["flags"]["new-checkout"]
    assert definition["targeting"] == {"fractional": [["on", 10_000], ["off", 0]]}


async def test_a_failed_gate_sets_the_flag_back_to_the_last_good_share(time_skipping_env, s3_server, tmp_path, unique,
                                                                      health):
    path = tmp_path / "flags.json"
    gate = {"templates": [{"templateName": "healthy"}]}
    template = {"name": "healthy", "metrics": [{"name": "ok", "successCondition": "result == True", "failureLimit": 0,
                                                "provider": {"web": {"url": health.url, "jsonPath": "ok"}}}]}
    release = flag_release(f"gate-{unique}", path, [{"percent": 10, "bake": "1h", "analysis": gate},
                                                    {"percent": 50, "bake": "1h", "analysis": gate}],
                           analysis={"templates": [template]})
    queue = f"flags-{unique}"
    async with release_worker(time_skipping_env.client, queue, s3_server, None,
                              extra=[measure_activity(default_providers())]):
        handle = await time_skipping_env.client.start_workflow(
            StagedRelease.run, ReleaseInput(release=release), id=release.rollout_id, task_queue=queue)
        await at_phase(handle, 0)
        app = Application(path, f"gate-{unique}")
        good = await app.share_near(10)
        await handle.execute_update("promote", PromoteRequest(by="pm"))
        await at_phase(handle, 1)
        await app.share_near(50)
        health.ok = False
        await handle.execute_update("promote", PromoteRequest(by="pm"))
        final = await handle.result()
    assert (final.phase, final.reason) == (Phase.DEGRADED, "AnalysisFailed"), final.message
    assert "back to the last good share, 10%" in final.message
    assert await app.share_near(10) == good, "the same users as at the last good phase"


async def test_a_flag_kept_as_an_s3_object(time_skipping_env, s3_server, tmp_path, unique):
    """The flag document in S3 (moto): the ramp writes it there, an application syncs it to the file its
    provider reads; a write racing another writer is refused (retried), never lost."""
    s3 = s3_server.client()
    bucket = f"flags-{unique}"
    s3.create_bucket(Bucket=bucket)
    release = parse_release({
        "apiVersion": "rollouts.durable.dev/v1alpha1", "kind": "Release",
        "metadata": {"name": f"s3flag-{unique}", "environment": "test"},
        "spec": {"artifact": {"variant": "on"},
                 "channel": {"flag": {"s3": {"bucket": bucket, "key": "flagd/flags.json", "endpoint": s3_server.url},
                                      "flag": "new-checkout"}},
                 "phases": [{"percent": 10, "bake": "1h"}, {"percent": 50, "bake": "1h"}]}})
    from activities.targets.flag.s3object import S3ObjectBackend

    local = tmp_path / "synced" / "flags.json"
    read = lambda: s3.get_object(Bucket=bucket, Key="flagd/flags.json")["Body"].read()  # noqa: E731
    queue = f"flags-{unique}"
    with Projection(read, local):
        async with release_worker(time_skipping_env.client, queue, s3_server, None):
            await ramp_10_50_100(time_skipping_env.client, release, queue, local)
    refused_when_changed_meanwhile(S3ObjectBackend(lambda o: s3), release.spec.channel.flag, lambda data: s3.put_object(
        Bucket=bucket, Key="flagd/flags.json", Body=data + b" "))  # another writer, meanwhile


async def test_a_ramp_in_unleash_evaluated_by_the_unleash_sdk(time_skipping_env, s3_server, tmp_path, unique,
                                                              monkeypatch):
    """The optional store: Unleash's admin API (a loopback stand-in implementing those calls), the
    flexibleRollout's `rollout` set phase by phase, the real UnleashClient evaluating 10,000 users."""
    from UnleashClient import UnleashClient

    from localcluster.unleash import UnleashStandIn

    unleash = UnleashStandIn(admin_token="admin-secret", client_token="client-secret").start()
    unleash.add_feature("new-checkout")
    monkeypatch.setenv("DURABLE_ROLLOUTS_UNLEASH_TOKEN", "admin-secret")
    release = parse_release({
        "apiVersion": "rollouts.durable.dev/v1alpha1", "kind": "Release",
        "metadata": {"name": f"unleash-{unique}", "environment": "test"},
        "spec": {"artifact": {"variant": "on"},
                 "channel": {"flag": {"unleash": {"url": unleash.url}, "flag": "new-checkout"}},
                 "phases": [{"percent": p, "bake": "1h"} for p in (1, 10, 50)]}})
    sdk = UnleashClient(url=f"{unleash.url}/api", app_name="checkout", environment="production", refresh_interval=1,
                        disable_metrics=True, custom_headers={"Authorization": "client-secret"},
                        cache_directory=str(tmp_path / "unleash-cache"))
    sdk.initialize_client()

    async def share_near(percent: float) -> set[str]:
        def on() -> set[str]:
            return {u for u in USERS if sdk.is_enabled("new-checkout", {"userId": u})}

        async def check():
            first, again = await asyncio.to_thread(on), await asyncio.to_thread(on)
            return first if first == again and abs(100 * len(first) / len(USERS) - percent) <= 1.0 else None

        return await eventually(check, timeout=30, interval=0.5, what=f"{percent}% in Unleash")

    queue = f"flags-{unique}"
    seen = []
    try:
        async with release_worker(time_skipping_env.client, queue, s3_server, None):
            handle = await time_skipping_env.client.start_workflow(
                StagedRelease.run, ReleaseInput(release=release), id=release.rollout_id, task_queue=queue)
            for index, percent in enumerate((1, 10, 50)):
                await at_phase(handle, index)
                assert unleash.rollout("new-checkout") == str(percent)
                seen.append(await share_near(percent))
                await handle.execute_update("promote", PromoteRequest(by="pm"))
            assert (await handle.result()).phase is Phase.HEALTHY
        seen.append(await share_near(100))
    finally:
        sdk.destroy()
        unleash.stop()
    assert all(a <= b for a, b in zip(seen, seen[1:], strict=False)), "each phase a superset"
    assert unleash.refused == [] and "PATCH" in {m for m, _ in unleash.calls} and "PUT" not in {m for m, _ in unleash.calls}


async def test_a_flag_kept_in_a_configmap(time_skipping_env, s3_server, local_cluster, kube_api, tmp_path, unique):
    """The document in a ConfigMap on the real local API server: the ramp writes it, a projection of it
    into a file (what the kubelet does for a mounted ConfigMap) is what OpenFeature reads; a write racing
    another writer is refused (the resourceVersion changed), retryably."""
    from kubernetes import client as k8s
    from temporalio.worker import Worker

    from activities.targets.flag import FlagActivities
    from activities.targets.flag.configmap import ConfigMapBackend
    from activities.targets.flag.store import FlagdStore
    from activities.targets.kubernetes.client import KubeClients

    namespace = f"flags-{unique}"
    core = k8s.CoreV1Api(kube_api)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace)))
    release = parse_release({
        "apiVersion": "rollouts.durable.dev/v1alpha1", "kind": "Release",
        "metadata": {"name": f"cm-{unique}", "environment": "test"},
        "spec": {"artifact": {"variant": "on"},
                 "channel": {"flag": {"configMap": {"namespace": namespace, "name": "flagd"}, "flag": "new-checkout"}},
                 "phases": [{"percent": 10, "bake": "1h"}, {"percent": 50, "bake": "1h"}]}})
    local = tmp_path / "mounted" / "flags.json"
    clients = KubeClients(str(local_cluster.kubeconfig))
    backend = ConfigMapBackend(clients)
    flags = FlagActivities(extra_stores={"configMap": FlagdStore(backend)})
    queue = f"flags-{unique}"
    read = lambda: (core.read_namespaced_config_map("flagd", namespace).data or {})["flags.json"].encode()  # noqa: E731
    with Projection(read, local), concurrent.futures.ThreadPoolExecutor(4) as pool:
        async with Worker(time_skipping_env.client, task_queue=queue, workflows=[StagedRelease],
                          activities=[flags.set_flag_share, flags.read_flag_share], activity_executor=pool):
            await ramp_10_50_100(time_skipping_env.client, release, queue, local)
    refused_when_changed_meanwhile(backend, release.spec.channel.flag, lambda data: core.patch_namespaced_config_map(
        "flagd", namespace, {"metadata": {"labels": {"touched": "yes"}}}))
    clients.close()


async def test_a_rollback_keeps_the_share_the_flag_had_before(time_skipping_env, s3_server, tmp_path, unique, health):
    """The flag was at a third ([on, 1], [off, 2]) before the release; its first gate fails: back to that
    third, not 0 %, and to the entries exactly as written (not a rounded share re-expressed)."""
    path = tmp_path / "flags.json"
    flag = {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off",
            "targeting": {"fractional": [["on", 1], ["off", 2]]}}
    path.write_text(json.dumps({"flags": {"new-checkout": flag}}))
    template = {"name": "healthy", "metrics": [{"name": "ok", "successCondition": "result == True", "failureLimit": 0,
                                                "provider": {"web": {"url": health.url, "jsonPath": "ok"}}}]}
    release = flag_release(f"before-{unique}", path, [{"percent": 50, "bake": "1m",
                                                       "analysis": {"templates": [{"templateName": "healthy"}]}}],
                           analysis={"templates": [template]})
    health.ok = False
    queue = f"flags-{unique}"
    async with release_worker(time_skipping_env.client, queue, s3_server, None,
                              extra=[measure_activity(default_providers())]):
        final = await (await time_skipping_env.client.start_workflow(
            StagedRelease.run, ReleaseInput(release=release), id=release.rollout_id, task_queue=queue)).result()
    assert (final.phase, final.reason) == (Phase.DEGRADED, "AnalysisFailed"), final.message
    assert "back to the share before the release, 33.33%" in final.message
    assert json.loads(path.read_text())["flags"]["new-checkout"]["targeting"] == {"fractional": [["on", 1], ["off", 2]]}
    assert final.exposure.observed == 33.33


async def test_what_the_release_cannot_write_is_refused_before_any_write(time_skipping_env, s3_server, tmp_path,
                                                                         unique):
    """Refused at the read before the first phase, naming why, the file untouched: a flag whose 100 % is
    beyond what 'on' and the baseline hold ('blue' has 60 %), and a first phase below the share the
    flag has now (5 %: a 1 % phase would take users away and give them back)."""
    cases = {"the rest is": [["blue", 60], ["on", 1], ["off", 39]], "phase 1 (1%) is below": [["on", 500], ["off", 9500]]}
    queue = f"flags-{unique}"
    async with release_worker(time_skipping_env.client, queue, s3_server, None):
        for index, (why, entries) in enumerate(cases.items()):
            path = tmp_path / f"flags-{index}.json"
            flag = {"state": "ENABLED", "variants": {"on": True, "off": False, "blue": True}, "defaultVariant": "off",
                    "targeting": {"fractional": entries}}
            path.write_text(json.dumps({"flags": {"new-checkout": flag}}))
            before = path.read_text()
            release = flag_release(f"refused-{index}-{unique}", path, [{"percent": 1}, {"percent": 10}])
            final = await (await time_skipping_env.client.start_workflow(
                StagedRelease.run, ReleaseInput(release=release), id=release.rollout_id, task_queue=queue)).result()
            assert final.phase is Phase.DEGRADED and why in final.message, final.message
            assert "nothing was published" in final.message, final.message
            assert path.read_text() == before, why
