"""Blue-green, rolling update, recreate and the rollback window on ECS, from the CLI (the stand-in and worker
of test_ecs_canary.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from temporalio.service import RPCError

from localcluster.ecssite import clients, new_ecs_service
from models.spec import parse_rollout
from models.status import Phase, RolloutStatus
from starters.commands import start_workflow
from tests.ecs.helpers import REPO, paused, shares, task_sets
from tests.helpers import ECS_TARGET, ecs_document, eventually, finished


async def test_blue_green_previews_on_the_test_listener_switches_in_one_call_and_switches_back_warm(
        ecs, aws, dev_client, unique):
    name, site = f"bg-{unique}", ecs.site
    strategy = {"blueGreen": {"autoPromotionEnabled": False, "scaleDownDelaySeconds": 300,
                              "abortScaleDownDelaySeconds": 0}}
    document = ecs_document(name, site, "shop/web:6.0")
    document["spec"]["strategy"] = strategy
    path = ecs.spec(name, "shop/web:6.0")
    Path(path).write_text(yaml.safe_dump(document))
    assert ecs("start", "-f", path).returncode == 0
    await paused(dev_client, f"test/{name}", 1)
    test_listener = site["loadBalancer"]["testListener"]
    preview = {arn: n for arn, n in aws.controller.route(test_listener, 100).items()}
    assert shares(aws, site) == {"first": 100} and len(preview) == 1 and "503" not in preview
    assert [ts["computedDesiredCount"] for ts in task_sets(aws, site)] == [4, 4], "the preview at full size"

    before = len(aws.calls())
    assert ecs("promote", f"test/{name}").returncode == 0
    await paused(dev_client, f"test/{name}", 3)  # the previous version kept warm
    assert shares(aws, site) == {"candidate": 100}
    switch = [c.action for c in aws.calls()[before:] if not c.action.startswith(("Describe", "List"))]
    assert switch == ["ModifyListener"], switch

    before = len(aws.calls())
    assert ecs("abort", f"test/{name}", "--reason", "latency").returncode == 0
    final = await finished(dev_client.get_workflow_handle(f"rollout/test/{name}"))
    assert final.phase is Phase.DEGRADED, final
    assert shares(aws, site) == {"first": 100}
    back = [c.action for c in aws.calls()[before:] if not c.action.startswith(("Describe", "List"))]
    assert back[0] == "ModifyListener" and "UpdateTaskSet" not in back and "CreateTaskSet" not in back, back
    assert [ts["externalId"] for ts in task_sets(aws, site)] == ["first"]


async def test_blue_green_completes_the_preview_primary_and_the_old_task_set_gone(ecs, aws, dev_client, unique):
    name, site = f"bgok-{unique}", ecs.site
    document = ecs_document(name, site, "shop/web:7.0")
    document["spec"]["strategy"] = {"blueGreen": {"scaleDownDelaySeconds": 0}}
    path = ecs.spec(name, "shop/web:7.0")
    Path(path).write_text(yaml.safe_dump(document))
    result = ecs("start", "-f", path, "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"rollout/test/{name}: Healthy" in result.stdout, result.stdout
    assert "the production listener → preview tasks (shop/web:7.0)" in result.stdout, result.stdout
    (primary,) = task_sets(aws, site)
    assert primary["status"] == "PRIMARY" and shares(aws, site) == {"candidate": 100}
    assert primary["computedDesiredCount"] == primary["runningCount"] == 4


async def test_rolling_update_in_place_behind_one_target_group_then_undo(ecs, aws, dev_client, unique):
    """maxSurge 1, maxUnavailable 0 on 4 tasks: never fewer than 4 healthy targets, never more than 5 tasks;
    then `rollout undo` puts the previous task definition revision back (no registration)."""
    name, site = f"roll-{unique}", ecs.site
    document = ecs_document(name, site, "shop/web:8.0")
    document["spec"]["strategy"] = {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    path = ecs.spec(name, "shop/web:8.0")
    Path(path).write_text(yaml.safe_dump(document))
    group = site["loadBalancer"]["targetGroups"][0]
    elbv2 = clients(aws.url, site["region"])["elbv2"]
    seen: list[tuple[int, int]] = []  # (tasks wanted in all task sets, healthy targets) while it runs
    process = subprocess.Popen([sys.executable, "-m", "starters.cli", "start", "-f", path, "--wait"], cwd=REPO,
                               env={**os.environ, "TEMPORAL_ADDRESS": ecs.address, "ROLLOUT_TASK_QUEUE": ecs.queue},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while process.poll() is None:
        wanted = sum(ts.get("computedDesiredCount", 0) for ts in task_sets(aws, site))
        healthy = len(elbv2.describe_target_health(TargetGroupArn=group)["TargetHealthDescriptions"])
        seen.append((wanted, healthy))
    out, err = process.communicate()
    assert process.returncode == 0, out + err
    assert "revision 1 → 2" in out, out
    assert max(w for w, _ in seen) == 5 and min(h for _, h in seen) >= 4, seen
    (primary,) = task_sets(aws, site)
    assert primary["taskDefinition"].endswith(":2") and primary["loadBalancers"][0]["targetGroupArn"] == group
    assert [c.action for c in aws.calls("ModifyListener", listener=site["loadBalancer"]["listener"])] == [], \
        "in place: no weight changed"

    undone = ecs("undo", f"test/{name}", "--wait")
    assert undone.returncode == 0, undone.stdout + undone.stderr
    (primary,) = task_sets(aws, site)
    assert primary["taskDefinition"].endswith(":1"), primary
    registered = [c for c in aws.calls("RegisterTaskDefinition") if c.params.get("family") == site["cluster"]]
    assert len(registered) == 1, "undo runs the earlier revision as it was"


async def test_recreate_stops_the_old_tasks_first_and_a_failed_update_is_undone(ecs, aws, dev_client, unique):
    name, site = f"rec-{unique}", ecs.site
    aws.controller.behave(f"shop/web:broken-{unique}", ready="never")
    document = ecs_document(name, site, f"shop/web:broken-{unique}", deadline=10)
    document["spec"]["strategy"] = {"recreate": {}}
    path = ecs.spec(name, "x:1")
    Path(path).write_text(yaml.safe_dump(document))
    result = ecs("start", "-f", path, "--wait")
    assert result.returncode == 1 and "Degraded ProgressDeadlineExceeded" in result.stdout, result.stdout
    mine = [c for c in aws.calls("UpdateTaskSet") if site["cluster"] in str(c.params)]
    assert [c.params["scale"]["value"] for c in mine][:2] == [0.0, 100.0], "the old task set stops first"
    (primary,) = task_sets(aws, site)
    assert primary["externalId"] == "first" and primary["computedDesiredCount"] == 4, "undone: the old one back"
    assert shares(aws, site) == {"first": 100}




async def test_rollback_window_keeps_the_previous_revision_warm_and_undo_switches_at_once(ecs, aws, dev_client, unique):
    name, site = f"win-{unique}", ecs.site
    document = ecs_document(name, site, "shop/web:11.0", steps=[{"setWeight": 50}, {"setWeight": 100}])
    document["spec"]["rollbackWindow"] = {"duration": "10m"}
    path = ecs.spec(name, "x:1")
    Path(path).write_text(yaml.safe_dump(document))
    result = ecs("start", "-f", path, "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    window = dev_client.get_workflow_handle(f"rollout/test/{name}/window")

    async def warm():
        try:
            s = await window.query("status", result_type=RolloutStatus)
        except RPCError:  # not started yet
            return None
        return s if s.phase is Phase.PAUSED else None

    await eventually(warm, timeout=60, what="the window open")
    sets = {ts["externalId"].split("/")[-2]: ts for ts in task_sets(aws, site)}
    assert sets["warm"]["computedDesiredCount"] == sets["warm"]["runningCount"] == 4, sets
    assert shares(aws, site) == {"candidate": 100}, "the warm copy takes no traffic"

    before = len(aws.calls())
    undone = ecs("undo", f"test/{name}", "--wait")
    assert undone.returncode == 0, undone.stdout + undone.stderr
    switch = [c.action for c in aws.calls()[before:] if not c.action.startswith(("Describe", "List"))]
    assert switch[0] == "ModifyListener" and "CreateTaskSet" not in switch and "UpdateTaskSet" not in switch, switch
    (primary,) = task_sets(aws, site)
    assert primary["taskDefinition"].endswith(":1") and primary["status"] == "PRIMARY"
    assert sum(shares(aws, site).values()) == 100 and "503" not in shares(aws, site)
