"""ECS under analysis, faults and pipelines: a CloudWatch analysis and an alarm gate rolling back, a worker
SIGKILLed during an ECS canary (every change once in the call log), and a pipeline whose second stage is an
ECS wave over two regions."""

from __future__ import annotations

import json
import math
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


def cloudwatch_templates(site: dict) -> dict:
    balancer = "/".join(site["loadBalancer"]["listener"].split(":listener/", 1)[1].split("/")[:3])

    def stat(name: str) -> dict:
        return {"metric": {"namespace": "AWS/ApplicationELB", "metricName": name, "dimensions": [
            {"name": "LoadBalancer", "value": balancer}, {"name": "TargetGroup", "value": "{{args.group}}"}]},
            "period": 60, "stat": "Sum"}

    return {"templates": [
        {"name": "alb-errors", "args": [{"name": "group"}], "metrics": [{
            "name": "error-rate", "initialDelay": "3s", "interval": "1s", "count": 3, "failureLimit": 0,
            "successCondition": "result['rate'][0] < 5",
            "provider": {"cloudWatch": {"region": site["region"], "lookback": "10m", "metricDataQueries": [
                {"id": "errors", "metricStat": stat("HTTPCode_Target_5XX_Count"), "returnData": False},
                {"id": "requests", "metricStat": stat("RequestCount"), "returnData": False},
                {"id": "rate", "expression": "FILL(errors, 0) / requests * 100"}]}}}]},
        {"name": "alarms", "metrics": [{
            "name": "no-alarm", "successCondition": "len(result['inAlarm']) == 0",
            "provider": {"cloudWatchAlarms": {"region": site["region"], "alarmNames": [f"{site['cluster']}-5xx"]}}}]}]}


async def test_cloudwatch_analysis_of_the_candidates_target_group_rolls_back(ecs, aws, dev_client, unique):
    """The canary's own target group (valueFrom.targetGroupValue) measured through GetMetricData while the
    ALB reports its traffic; a version answering half its requests with 5xx is rolled back."""
    import asyncio

    name, site = f"cw-{unique}", ecs.site
    aws.controller.behave(f"shop/web:errors-{unique}", error_rate=0.5)
    document = ecs_document(name, site, f"shop/web:errors-{unique}", steps=[
        {"setWeight": 50},
        {"analysis": {"templates": [{"templateName": "alb-errors"}],
                      "args": [{"name": "group", "valueFrom": {"targetGroupValue": "Latest"}}]}},
        {"setWeight": 100}])
    document["spec"]["analysis"] = cloudwatch_templates(site)
    path = ecs.spec(name, "x:1")
    Path(path).write_text(yaml.safe_dump(document))
    assert ecs("start", "-f", path).returncode == 0
    handle = dev_client.get_workflow_handle(f"rollout/test/{name}")
    for _ in range(200):  # the ALB's traffic while the rollout runs (at most a minute)
        if (await handle.describe()).status.name != "RUNNING":
            break
        aws.controller.route(site["loadBalancer"]["listener"], 100, metrics=True)
        await asyncio.sleep(0.3)
    final = await finished(handle)
    assert final.phase is Phase.DEGRADED and final.reason == "AnalysisFailed", final
    measured = final.analysis[0].measurements[-1] if final.analysis and final.analysis[0].measurements else None
    assert measured is not None and measured.phase == "Failed", final.analysis
    assert "rate=FILL(errors, 0) / requests * 100" in measured.query and '"rate": [' in measured.value, measured
    candidate = site["loadBalancer"]["targetGroups"][1].split(":", 5)[-1]  # the side the first task set is not on
    asked = aws.calls("GetMetricData", group=candidate)
    assert asked and all(site["loadBalancer"]["targetGroups"][0].split(":", 5)[-1] not in str(c.params) for c in asked)
    assert shares(aws, site) == {"first": 100}


async def test_a_cloudwatch_alarm_in_alarm_fails_the_step(ecs, aws, dev_client, unique):
    name, site = f"alarm-{unique}", ecs.site
    watch = clients(aws.url, site["region"])["cloudwatch"]
    alarm = f"{site['cluster']}-5xx"
    watch.put_metric_alarm(AlarmName=alarm, MetricName="HTTPCode_Target_5XX_Count", Namespace="AWS/ApplicationELB",
                           Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=10,
                           ComparisonOperator="GreaterThanThreshold")
    watch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="5xx above 10 per minute")
    document = ecs_document(name, site, "shop/web:9.0", steps=[
        {"setWeight": 20}, {"analysis": {"templates": [{"templateName": "alarms"}]}}, {"setWeight": 100}])
    document["spec"]["analysis"] = cloudwatch_templates(site)
    path = ecs.spec(name, "x:1")
    Path(path).write_text(yaml.safe_dump(document))
    result = ecs("start", "-f", path, "--wait")
    assert result.returncode == 1 and "Degraded AnalysisFailed" in result.stdout, result.stdout
    assert shares(aws, site) == {"first": 100}

    watch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="quiet")
    again = ecs.spec(f"ok-{unique}", "x:1")
    document["metadata"]["name"] = f"ok-{unique}"
    Path(again).write_text(yaml.safe_dump(document))
    result = ecs("start", "-f", again, "--wait")
    assert result.returncode == 0, result.stdout + result.stderr


ECS_EFFECTS = ["prepare_ecs_canary", "set_ecs_routes", "promote_ecs_canary"]


@pytest.mark.parametrize("fault", ["after every step", "inside a long wait"])
async def test_worker_killed_during_an_ecs_canary_applies_every_effect_once(
        fault, dev_server, dev_client, aws, release_worker_processes, unique, tmp_path):
    """The durability matrix's kill cells on ECS: SIGKILL after each activity that changes AWS (before its
    result reaches the server), or a second into a wait for healthy targets; a supervisor restarts the
    worker; the call log shows each change made once, in order."""
    from tests.matrix import Cell

    cell, passed = Cell("ecs canary", f"worker kill {fault}"), False
    try:
        await _killed_canary(fault, cell, dev_server, dev_client, aws, release_worker_processes, unique, tmp_path)
        passed = True
    finally:
        cell.write(passed)


async def _killed_canary(fault, cell, dev_server, dev_client, aws, release_worker_processes, unique, tmp_path):
    from tests.matrix import Supervisor
    from tests.test_matrix import kill_plan

    site = new_ecs_service(aws.url, f"kill-{unique}", controller=aws.controller)
    image = f"shop/web:slow-{unique}"
    aws.controller.behave(image, ready_delay_seconds=3.0)
    points = [{"when": "after", "activities": ECS_EFFECTS}] if fault == "after every step" else \
        [{"when": "during", "activities": ["set_ecs_routes", "promote_ecs_canary"], "seconds": 1.0, "max": 2}]
    env, journal = kill_plan(tmp_path, points)
    queue = f"ecs-kill-{unique}"
    supervisor = Supervisor(release_worker_processes, dev_server.address, queue, env={**aws.environment(), **env})
    try:
        rollout = parse_rollout(ecs_document(f"kill-{unique}", site, image, deadline=120, steps=[
            {"setWeight": 25}, {"pause": {"duration": "1s"}}, {"setWeight": 50}, {"setWeight": 100}]))
        final = await finished(await start_workflow(dev_client, rollout, queue, "test"), 300)
    finally:
        await supervisor.stop()
    kills = [json.loads(line) for line in journal.read_text().splitlines()] if journal.exists() else []
    cell.figures.update(kills=len(kills), kill_points=sorted({f"{k['when']} {k['activity']}" for k in kills}),
                        restarts=supervisor.restarts)
    assert final.phase is Phase.HEALTHY, final.message
    if fault == "after every step":
        assert {k["activity"] for k in kills} == set(ECS_EFFECTS), kills
    else:
        assert kills and all(k["when"] == "during" for k in kills), kills
    mine = [c for c in aws.calls() if site["cluster"] in str(c.params) or site["loadBalancer"]["listener"] in str(c.params)]
    changes = [c.action for c in mine if not c.action.startswith(("Describe", "List"))]
    assert [c.params["scale"]["value"] for c in mine if c.action == "UpdateTaskSet"] == [25.0, 50.0, 100.0], changes
    listener_weights = [[g["Weight"] for g in c.params["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]]
                        for c in mine if c.action == "ModifyListener"]
    assert listener_weights == [["75", "25"], ["50", "50"], ["0", "100"]], listener_weights  # the query form: text
    for action in ("CreateTaskSet", "RegisterTaskDefinition", "UpdateServicePrimaryTaskSet", "DeleteTaskSet",
                   "TagResource", "UntagResource"):
        assert changes.count(action) == 1, (action, changes)
    (primary,) = task_sets(aws, site)
    assert primary["taskDefinition"].endswith(":2") and shares(aws, site) == {"candidate": 100}
    healthy = aws.controller.healthy_at[primary["taskSetArn"]]
    for call in (c for c in mine if c.action == "ModifyListener"):  # capacity first, the retries' included
        weight = int(call.params["DefaultActions"][0]["ForwardConfig"]["TargetGroups"][1]["Weight"])
        ready = sum(1 for at in healthy if at <= call.at)
        assert ready >= math.ceil(4 * weight / 100), f"{weight}% sent with {ready} healthy candidate targets"




def test_ecs_targets_in_a_pipeline_are_validated_by_kind_and_region():
    from models.pipeline import parse_pipeline

    def pipeline(targets: list[dict], **overrides) -> dict:
        return {"apiVersion": "rollouts.durable.dev/v1alpha1", "kind": "Pipeline", "metadata": {"name": "p", "environment": "test"},
                "spec": {"bundle": {"images": {"web": "registry.local/web:1"}}, "stages": [{
                    "name": "prod", "rollout": ecs_document("web", ECS_TARGET, "registry.local/web:0"),
                    "overrides": overrides, "waves": [{"targets": targets}]}]}}

    for targets, overrides, problem in [
        ([{"context": "local-1"}], {}, "a kubernetes target for a template that deploys to ecs"),
        ([{"ecs": {"region": "us-west-2"}}], {}, "ecs.loadBalancer.listener: in region us-east-1, the target is in us-west-2"),
        ([{"ecs": {"cluster": "a"}}], {"namespace": "shop"}, "overrides: namespace and deployment are Kubernetes'"),
        ([{"ecs": {"cluster": "a"}, "namespace": "shop"}], {}, "namespace: a Kubernetes field"),
    ]:
        with pytest.raises(Exception) as error:
            parse_pipeline(pipeline(targets, **overrides))
        assert problem in str(error.value), (problem, str(error.value))
    parsed = parse_pipeline(pipeline([{"ecs": {"cluster": "a"}}, {"ecs": {"cluster": "b"}}]))
    assert [t.key for t in parsed.spec.stages[0].targets] == ["a", "b"]


async def test_a_pipeline_whose_second_stage_is_an_ecs_wave_over_two_regions(
        dev_server, aws, registry, release_worker_processes, unique, tmp_path):
    """staging: one ECS service in us-east-1; prod: a wave over us-east-1 and us-west-2 at once. Each target
    counts as verified only on evidence read from ECS and the ALB: its primary task set runs the bundle's
    pinned digest with every task running and its targets healthy."""
    digest = registry.push(f"shop/web-{unique}", "2.0")
    pinned = f"{registry.host}/shop/web-{unique}:2.0@{digest}"
    sites = {name: new_ecs_service(aws.url, f"{name}-{unique}", region=region, controller=aws.controller)
             for name, region in (("staging", "us-east-1"), ("east", "us-east-1"), ("west", "us-west-2"))}
    template = ecs_document("web", sites["staging"], f"{registry.host}/shop/web-{unique}:template",
                            steps=[{"setWeight": 50}, {"setWeight": 100}])
    document = {"apiVersion": "rollouts.durable.dev/v1alpha1", "kind": "Pipeline",
                "metadata": {"name": f"ecs-{unique}", "environment": "test"},
                "spec": {"bundle": {"images": {"web": f"{registry.host}/shop/web-{unique}:2.0"}}, "stages": [
                    {"name": "staging", "rollout": template, "waves": [{"targets": [{"ecs": {}}]}]},
                    {"name": "prod", "rollout": template, "waves": [{"maxParallel": 2, "targets": [
                        {"ecs": sites["east"]}, {"ecs": sites["west"]}]}]}]}}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(document))
    queue = f"ecs-pipe-{unique}"
    release_worker_processes(dev_server.address, queue, env=aws.environment())  # every family: the pipeline's too
    result = subprocess.run([sys.executable, "-m", "starters.cli", "pipeline", "start", "-f", str(path), "--wait",
                             "--json"], capture_output=True, text=True, cwd=REPO, timeout=300,
                            env={**os.environ, "TEMPORAL_ADDRESS": dev_server.address, "ROLLOUT_TASK_QUEUE": queue,
                                 "ROLLOUT_USER": "ci-bot"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    for site in sites.values():
        (primary,) = task_sets(aws, site)
        ecs = clients(aws.url, site["region"])["ecs"]
        image = ecs.describe_task_definition(taskDefinition=primary["taskDefinition"])["taskDefinition"][
            "containerDefinitions"][0]["image"]
        assert image == pinned and shares(aws, site) == {"candidate": 100}, (site["cluster"], image)
    west = [c for c in aws.calls("CreateTaskSet") if c.region == "us-west-2" and c.params["cluster"] == sites["west"]["cluster"]]
    assert len(west) == 1, "the west target's rollout ran in its own region"
    status = json.loads(result.stdout.strip().splitlines()[-1]) if result.stdout.strip().startswith("{") else None
    assert status is None or status.get("phase") == "Healthy"


