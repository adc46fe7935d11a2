"""Rolling updates of a Compose service on a real Docker engine (Debian's dockerd in a namespace of the
test's own), from the CLI: the project brought up by the official Compose CLI as the platform's script
does, then rolled by the workflow; the engine's own event stream is the call log."""

from __future__ import annotations

import json

import yaml

from activities.targets.compose.containers import Container
from models.status import Phase
from tests.compose.helpers import SECRET, Events, containers, replay
from tests.helpers import finished


def applied(attrs: dict) -> dict:
    """A container's configuration read back from its inspection, not from the label the engine wrote."""
    labels = {k: v for k, v in attrs["Config"]["Labels"].items() if k != "dev.durable-rollouts.config"}
    return Container({**attrs, "Config": {**attrs["Config"], "Labels": labels}}).config()


async def test_rolling_update_keeps_three_ready_then_compose_sees_the_new_containers(compose, docker_host, dev_client,
                                                                                   unique):
    """maxSurge 1, maxUnavailable 0 on 3 replicas: never more than 4 containers, never fewer than 3 healthy
    while an old one stops; the new containers carry Compose's labels, so `docker compose ps` lists them; a
    secret by reference reaches the containers only; `rollout undo` puts back what Compose made."""
    old_image = docker_host.service_image("shop/web", "1.0.0")
    new_image = docker_host.service_image("shop/web", "2.0.0")
    compose.up(old_image)
    before = containers(docker_host, compose.project)
    assert [c["State"]["Health"]["Status"] for c in before] == ["healthy"] * 3
    original = Container(before[0]).config()  # what Compose made, read back from its inspection
    events = Events(docker_host, compose.project)
    path = compose.spec(f"roll-{unique}", new_image)
    document = yaml.safe_load(open(path))  # a secret by reference: filled in only by the activity making containers
    document["spec"]["target"]["composeHost"]["compose"]["services"]["web"]["environment"] = {
        "SHOP_TOKEN": "{{secrets.SHOP_TOKEN}}", "PRICE": "$$5"}
    open(path, "w").write(yaml.safe_dump(document))
    result = compose("start", "-f", path, "--wait")
    seen = events.close()
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"rollout/test/roll-{unique}: Healthy" in result.stdout, result.stdout
    after = containers(docker_host, compose.project)
    assert [c["Config"]["Image"] for c in after] == [new_image] * 3
    assert all(c["State"]["Health"]["Status"] == "healthy" for c in after)
    assert {c["Id"] for c in after}.isdisjoint({c["Id"] for c in before})
    assert all({f"SHOP_TOKEN={SECRET}", "PRICE=$5"} <= set(c["Config"]["Env"]) for c in after)
    assert all(SECRET not in json.dumps(c["Config"]["Labels"]) for c in after), "the secret in a label"
    history = await dev_client.get_workflow_handle(f"rollout/test/roll-{unique}").fetch_history()
    assert SECRET not in history.to_json(), "the secret in the workflow's history"
    most, fewest = replay(seen, {c["Name"].lstrip("/") for c in before})
    assert most == 4 and fewest >= 3, (most, fewest, seen)
    assert [a for a, _, _ in seen].count("create") == 3, seen  # nothing doubled
    listed = docker_host.compose(compose.project, {"services": {"web": {"image": new_image}}}, "ps", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert sorted(line.split('"Name":"')[1].split('"')[0] for line in listed.stdout.splitlines()) == \
        [f"{compose.project}-web-{n}" for n in (4, 5, 6)], listed.stdout

    undone = compose("undo", f"test/roll-{unique}", "--wait")  # back to the configuration Compose made
    assert undone.returncode == 0, undone.stdout + undone.stderr
    back = containers(docker_host, compose.project)
    assert len(back) == 3 and all(c["State"]["Health"]["Status"] == "healthy" for c in back)
    assert all(applied(c) == original for c in back), (original, applied(back[0]))
    assert {c["Config"]["Labels"]["dev.durable-rollouts.revision"] for c in back} == {"2"}


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
