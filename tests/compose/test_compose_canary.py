"""A canary of a Compose service through HAProxy on the host (its runtime API): traffic from inside the
host's namespace counted by the version that answered, every share as the weights say, nothing failed
while containers join and leave the backend; an abort weights everything back without starting a
container."""

from __future__ import annotations

import asyncio
import json
import time

import yaml

from models.status import Phase
from tests.compose.helpers import Events, containers
from tests.ecs.helpers import paused
from tests.helpers import finished

PROXY = {"backend": "web", "port": 8080}


def counts(path) -> dict[str, int]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


async def share(path, version: str, requests: int = 150) -> tuple[float, dict[str, int]]:
    """The share of the next `requests` answers that came from `version` (and those answers)."""
    before = counts(path)
    deadline = time.monotonic() + 60
    while sum(counts(path).values()) - sum(before.values()) < requests and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    after = counts(path)
    seen = {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}
    return seen.get(version, 0) / max(1, sum(seen.values())), seen


async def test_canary_shares_follow_the_weights_and_nothing_fails_while_containers_come_and_go(
        compose, docker_host, dev_client, unique, tmp_path):
    old_image = docker_host.service_image("shop/web", "1.0.0")
    new_image = docker_host.service_image("shop/web", "2.0.0")
    compose.up(old_image)
    name = f"canary-{unique}"
    steps = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]
    path = compose.spec(name, new_image, strategy={"canary": {"steps": steps}}, proxy=PROXY)
    assert compose("start", "-f", path).returncode == 0
    await paused(dev_client, f"test/{name}", 1)
    out = tmp_path / "traffic.json"
    traffic = docker_host.traffic("http://127.0.0.1:18080/", out)
    try:
        measured, seen = await share(out, "2.0.0")
        assert abs(measured - 0.20) <= 0.02, seen
        assert len(containers(docker_host, compose.project)) == 4  # one canary beside three
        assert compose("promote", f"test/{name}").returncode == 0
        await paused(dev_client, f"test/{name}", 3)
        measured, seen = await share(out, "2.0.0")
        assert abs(measured - 0.50) <= 0.02, seen
        assert compose("promote", f"test/{name}").returncode == 0
        final = await finished(dev_client.get_workflow_handle(f"rollout/test/{name}"))
        assert final.phase is Phase.HEALTHY, final.message
        measured, seen = await share(out, "2.0.0", 60)
        assert measured == 1.0, seen
    finally:
        traffic.kill()
    assert not [k for k in counts(out) if k not in ("1.0.0", "2.0.0")], counts(out)
    after = containers(docker_host, compose.project)
    assert [c["Config"]["Image"] for c in after] == [new_image] * 3
    from activities.targets.compose.haproxy import Haproxy

    assert sorted(Haproxy(docker_host.runtime).servers("web")) == sorted(c["Name"].lstrip("/") for c in after)


async def test_abort_weights_everything_back_in_one_request_and_starts_no_container(compose, docker_host, dev_client,
                                                                                  unique, tmp_path):
    old_image = docker_host.service_image("shop/web", "1.0.0")
    new_image = docker_host.service_image("shop/web", "2.0.0")
    compose.up(old_image)
    name = f"abort-{unique}"
    path = compose.spec(name, new_image, strategy={"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}},
                        proxy=PROXY)
    assert compose("start", "-f", path).returncode == 0
    await paused(dev_client, f"test/{name}", 1)
    out = tmp_path / "traffic.json"
    traffic = docker_host.traffic("http://127.0.0.1:18080/", out)
    try:
        measured, seen = await share(out, "2.0.0", 60)
        assert abs(measured - 0.5) <= 0.05, seen
        second = compose("start", "-f", compose.spec(f"second-{unique}", new_image), "--wait")  # the same service
        assert second.returncode != 0, second.stdout
        refused = await finished(dev_client.get_workflow_handle(f"rollout/test/second-{unique}"))
        assert refused.reason == "InvalidTarget" and f"rollout/test/{name} is delivering to it" in refused.message, refused
        events = Events(docker_host, compose.project)
        assert compose("abort", f"test/{name}", "--reason", "errors").returncode == 0
        final = await finished(dev_client.get_workflow_handle(f"rollout/test/{name}"))
        seen_events = events.close()
        assert final.phase is Phase.DEGRADED, final
        measured, seen = await share(out, "1.0.0", 60)
        assert measured == 1.0, seen
    finally:
        traffic.kill()
    assert "create" not in [a for a, _, _ in seen_events] and "start" not in [a for a, _, _ in seen_events]
    client = docker_host.client()
    assert not client.containers.list(all=True, filters={"name": f"{compose.project}.web.rollout-lock"}), "still held"
    client.close()
    assert not [k for k in counts(out) if k not in ("1.0.0", "2.0.0")], counts(out)
    after = containers(docker_host, compose.project)
    assert [c["Config"]["Image"] for c in after] == [old_image] * 3


async def test_blue_green_previews_on_its_backend_switches_in_one_request_and_switches_back_warm(
        compose, docker_host, dev_client, unique, tmp_path):
    """The preview answers on the preview frontend only; promotion moves production in one runtime request;
    while the old containers are kept warm an abort moves it back without starting a container."""
    old_image = docker_host.service_image("shop/web", "1.0.0")
    new_image = docker_host.service_image("shop/web", "2.0.0")
    compose.up(old_image)
    name = f"bg-{unique}"
    strategy = {"blueGreen": {"autoPromotionEnabled": False, "scaleDownDelaySeconds": 300,
                              "abortScaleDownDelaySeconds": 0}}
    path = compose.spec(name, new_image, strategy=strategy, proxy={**PROXY, "previewBackend": "web-preview"})
    assert compose("start", "-f", path).returncode == 0
    await paused(dev_client, f"test/{name}", 1)
    production, preview = tmp_path / "production.json", tmp_path / "preview.json"
    traffic = [docker_host.traffic("http://127.0.0.1:18080/", production),
               docker_host.traffic("http://127.0.0.1:18081/", preview)]
    try:
        assert (await share(production, "1.0.0", 60))[0] == 1.0
        assert (await share(preview, "2.0.0", 60))[0] == 1.0
        assert len(containers(docker_host, compose.project)) == 6  # the preview at full size beside
        events = Events(docker_host, compose.project)
        assert compose("promote", f"test/{name}").returncode == 0
        await paused(dev_client, f"test/{name}", 3)  # the old containers kept warm
        measured, seen = await share(production, "2.0.0", 60)
        assert measured == 1.0, seen
        assert compose("abort", f"test/{name}", "--reason", "latency").returncode == 0
        final = await finished(dev_client.get_workflow_handle(f"rollout/test/{name}"))
        assert final.phase is Phase.DEGRADED, final
        measured, seen = await share(production, "1.0.0", 60)
        assert measured == 1.0, seen
        actions = [a for a, _, _ in events.close()]
    finally:
        for process in traffic:
            process.kill()
    assert "create" not in actions and "start" not in actions, actions  # switched and back: nothing started
    assert not [k for k in counts(production) if k not in ("1.0.0", "2.0.0")], counts(production)
    assert [c["Config"]["Image"] for c in containers(docker_host, compose.project)] == [old_image] * 3


ERRORS = ('(sum(rate(haproxy_backend_http_responses_total{proxy="web",code="5xx"}[6s])) or vector(0))'
          ' / sum(rate(haproxy_backend_http_responses_total{proxy="web"}[6s]))')


async def test_canary_10_50_100_gated_on_the_proxys_error_rate(compose, docker_host, dev_client, unique, tmp_path):
    """Prometheus scrapes HAProxy's own exporter; an analysis after each weight reads the backend's 5xx rate:
    a healthy version goes 10 → 50 → 100, one failing every second request is rolled back at 10 %."""
    from activities.targets.compose.haproxy import Haproxy
    from localcluster.prometheus import PrometheusServer

    prometheus = PrometheusServer(tmp_path / "prometheus", targets=[docker_host.metrics_address()]).start()
    compose.up(docker_host.service_image("shop/web", "1.0.0"))
    steps = [{"setWeight": 10}, {"analysis": {"templates": [{"templateName": "errors"}]}},
             {"setWeight": 50}, {"analysis": {"templates": [{"templateName": "errors"}]}}, {"setWeight": 100}]
    template = {"templates": [{"name": "errors", "metrics": [{
        "name": "5xx-rate", "initialDelay": "6s", "interval": "2s", "count": 2, "failureLimit": 0,
        "successCondition": "result[0] < 0.02", "provider": {"prometheus": {"address": prometheus.url, "query": ERRORS}}}]}]}
    out, traffic = tmp_path / "traffic.json", None
    try:
        for version, behaviour, phase in (("2.0.0", "healthy", Phase.HEALTHY), ("5.0.0-errors", "errors", Phase.DEGRADED)):
            image = docker_host.service_image("shop/web", version, behaviour=behaviour)
            name = f"gated-{behaviour}-{unique}"
            path = compose.spec(name, image, strategy={"canary": {"steps": steps}}, proxy=PROXY)
            document = yaml.safe_load(open(path))
            document["spec"]["analysis"] = template
            open(path, "w").write(yaml.safe_dump(document))
            assert compose("start", "-f", path).returncode == 0
            deadline = time.monotonic() + 60
            while traffic is None and len(Haproxy(docker_host.runtime).servers("web")) < 3:  # the stable ones served
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
            traffic = traffic or docker_host.traffic("http://127.0.0.1:18080/", out)
            final = await finished(dev_client.get_workflow_handle(f"rollout/test/{name}"), 180)
            assert final.phase is phase, final.message
            if phase is Phase.DEGRADED:
                assert final.reason == "AnalysisFailed" and final.analysis[0].measurements[-1].phase == "Failed", final
                weights = [h.detail.split("%")[0] for h in final.history if h.event == "weight-set"]
                assert weights[0] == "10" and "50" not in weights and final.canary_weight == 0, final.history
            measured, seen = await share(out, "2.0.0", 60)
            assert measured == 1.0, seen  # after both: all on 2.0.0 (promoted; then the failing one rolled back)
    finally:
        if traffic is not None:
            traffic.kill()
        prometheus.stop()
    assert [c["Config"]["Image"] for c in containers(docker_host, compose.project)] == ["shop/web:2.0.0"] * 3


async def test_a_proxy_restarted_mid_canary_gets_its_servers_back_at_the_next_step(compose, docker_host, dev_client,
                                                                                 unique):
    """HAProxy forgets the servers added at run time when it restarts: the next step adds the ready
    containers back before it weights them, so the canary completes on a backend of the new containers."""
    from activities.targets.compose.haproxy import Haproxy

    compose.up(docker_host.service_image("shop/web", "1.0.0"), replicas=2)
    new_image = docker_host.service_image("shop/web", "2.0.0")
    name = f"reload-{unique}"
    path = compose.spec(name, new_image, replicas=2, strategy={"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}},
                        proxy=PROXY)
    assert compose("start", "-f", path).returncode == 0
    await paused(dev_client, f"test/{name}", 1)
    docker_host.start_haproxy("web", 18080)  # restarted: empty backends
    assert Haproxy(docker_host.runtime).servers("web") == {}
    assert compose("promote", f"test/{name}").returncode == 0
    final = await finished(dev_client.get_workflow_handle(f"rollout/test/{name}"))
    assert final.phase is Phase.HEALTHY, final.message
    after = containers(docker_host, compose.project)
    assert [c["Config"]["Image"] for c in after] == [new_image] * 2
    servers = Haproxy(docker_host.runtime).servers("web")
    assert sorted(servers) == sorted(c["Name"].lstrip("/") for c in after) and all(s["weight"] for s in servers.values())
