"""Rolling updates of a Compose service on a real Docker engine (Debian's dockerd in a namespace of the
test's own), from the CLI: the project brought up by the official Compose CLI as the platform's script
does, then rolled by the workflow; the engine's own event stream is the call log."""

from __future__ import annotations

from models.status import Phase
from tests.compose.helpers import Events, containers, replay
from tests.helpers import finished


async def test_rolling_update_keeps_three_ready_then_compose_sees_the_new_containers(compose, docker_host, dev_client,
                                                                                   unique):
    """maxSurge 1, maxUnavailable 0 on 3 replicas: never more than 4 containers, never fewer than 3 healthy
    while an old one stops; the new containers carry Compose's labels, so `docker compose ps` lists them."""
    old_image = docker_host.service_image("shop/web", "1.0.0")
    new_image = docker_host.service_image("shop/web", "2.0.0")
    compose.up(old_image)
    before = containers(docker_host, compose.project)
    assert [c["State"]["Health"]["Status"] for c in before] == ["healthy"] * 3
    events = Events(docker_host, compose.project)
    result = compose("start", "-f", compose.spec(f"roll-{unique}", new_image), "--wait")
    seen = events.close()
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"rollout/test/roll-{unique}: Healthy" in result.stdout, result.stdout
    after = containers(docker_host, compose.project)
    assert [c["Config"]["Image"] for c in after] == [new_image] * 3
    assert all(c["State"]["Health"]["Status"] == "healthy" for c in after)
    assert {c["Id"] for c in after}.isdisjoint({c["Id"] for c in before})
    most, fewest = replay(seen, {c["Name"].lstrip("/") for c in before})
    assert most == 4 and fewest >= 3, (most, fewest, seen)
    assert [a for a, _, _ in seen].count("create") == 3, seen  # nothing doubled
    listed = docker_host.compose(compose.project, {"services": {"web": {"image": new_image}}}, "ps", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert sorted(line.split('"Name":"')[1].split('"')[0] for line in listed.stdout.splitlines()) == \
        [f"{compose.project}-web-{n}" for n in (4, 5, 6)], listed.stdout


async def test_a_never_healthy_image_is_rolled_back_and_the_old_containers_untouched(compose, docker_host, dev_client,
                                                                                    unique):
    old_image = docker_host.service_image("shop/web", "1.0.0")
    bad_image = docker_host.service_image("shop/web", "3.0.0-bad", behaviour="never-healthy")
    compose.up(old_image)
    before = {c["Id"]: c["State"]["StartedAt"] for c in containers(docker_host, compose.project)}
    result = compose("start", "-f", compose.spec(f"bad-{unique}", bad_image, deadline=10), "--wait")
    assert result.returncode != 0, result.stdout
    final = await finished(dev_client.get_workflow_handle(f"rollout/test/bad-{unique}"))
    assert final.phase is Phase.DEGRADED and final.reason == "ProgressDeadlineExceeded", final
    assert "3.0.0-bad" in final.message or "new containers ready" in final.message, final.message
    after = containers(docker_host, compose.project)
    assert {c["Id"]: c["State"]["StartedAt"] for c in after} == before, "the old containers, never restarted"
    assert all(c["Config"]["Image"] == old_image and c["State"]["Running"] for c in after)
