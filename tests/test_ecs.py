"""Rollouts to AWS ECS from the CLI: a service with the EXTERNAL deployment controller on moto's server
(stricter than ECS and ELBv2, with a call log) and the controller that plays ECS's scheduler and the ALB's
data plane (localcluster/awsstandin.py, ecscontroller.py); `rollout worker --targets aws` as its own
process, the dev server. Traffic is counted per task set by following the listener's live weights."""

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
from tests.helpers import ECS_TARGET, ecs_document, eventually, finished

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def ecs(dev_server, release_worker_processes, aws, unique, tmp_path):
    """`rollout` against an ECS worker process; `ecs.spec(...)` writes a document, `ecs.site` is the service."""
    queue = f"ecs-{unique}"
    release_worker_processes(dev_server.address, queue, "--targets", "aws", env=aws.environment())
    env = {**os.environ, "TEMPORAL_ADDRESS": dev_server.address, "ROLLOUT_TASK_QUEUE": queue, "ROLLOUT_USER": "ci-bot"}

    def run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "starters.cli", *args], capture_output=True, text=True,
                                cwd=REPO, env=env, timeout=timeout)
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def spec(name: str, image: str, **kwargs) -> str:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(ecs_document(name, run.site, image, **kwargs)))
        return str(path)

    run.spec = spec
    run.address, run.queue = dev_server.address, queue
    run.site = new_ecs_service(aws.url, f"shop-{unique}", controller=aws.controller)
    return run


def shares(aws, site: dict, **headers: str) -> dict[str, int]:
    """Where 100 requests through the production listener go: task set externalId -> count ("503": nowhere)."""
    counts = aws.controller.route(site["loadBalancer"]["listener"], 100, headers=headers)
    ecs = clients(aws.url, site["region"])["ecs"]
    sets = ecs.describe_services(cluster=site["cluster"], services=[site["service"]])["services"][0]["taskSets"]
    names = {ts["taskSetArn"]: "candidate" if ts["externalId"].startswith("durable-rollouts/") else ts["externalId"]
             for ts in sets}
    return {names.get(arn, arn): count for arn, count in counts.items()}


def task_sets(aws, site: dict) -> list[dict]:
    ecs = clients(aws.url, site["region"])["ecs"]
    return ecs.describe_services(cluster=site["cluster"], services=[site["service"]])["services"][0]["taskSets"]


async def paused(dev_client, rollout: str, step: int) -> RolloutStatus:
    handle = dev_client.get_workflow_handle(f"rollout/{rollout}")

    async def check():
        s = await handle.query("status", result_type=RolloutStatus)
        return s if s.phase is Phase.PAUSED and s.current_step == step else None

    return await eventually(check, timeout=90, what=f"{rollout} paused at step {step}")


async def test_canary_shifts_traffic_capacity_first_and_promotes(ecs, aws, dev_client, unique):
    name = f"web-{unique}"
    site = ecs.site
    steps = [{"setWeight": 20}, {"pause": {}},
             {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "x-beta", "headerValue": {"exact": "yes"}}]}},
             {"setWeight": 50}, {"pause": {}}]
    started = ecs("start", "-f", ecs.spec(name, "shop/web:2.0", steps=steps))
    assert started.returncode == 0, started.stdout + started.stderr
    status = await paused(dev_client, f"test/{name}", 1)
    assert status.canary_weight == 20 and status.canary_replicas == 1
    assert shares(aws, site) == {"first": 80, "candidate": 20}

    assert ecs("promote", f"test/{name}").returncode == 0
    await paused(dev_client, f"test/{name}", 4)
    assert shares(aws, site) == {"first": 50, "candidate": 50}
    assert shares(aws, site, **{"X-Beta": "YES"}) == {"candidate": 100}, "ALB header values match case-insensitively"

    assert ecs("promote", f"test/{name}").returncode == 0
    final = await finished(dev_client.get_workflow_handle(f"rollout/test/{name}"))
    assert final.phase is Phase.HEALTHY, final
    assert shares(aws, site) == {"candidate": 100}
    (primary,) = task_sets(aws, site)
    assert primary["status"] == "PRIMARY" and primary["taskDefinition"].endswith(f":{2}")

    mine = [c for c in aws.calls() if site["cluster"] in str(c.params) or site["loadBalancer"]["listener"] in str(c.params)]
    changes = [c.action for c in mine if not c.action.startswith(("Describe", "List"))]
    assert changes.count("CreateTaskSet") == 1
    assert changes.count("UpdateServicePrimaryTaskSet") == 1 and changes.count("DeleteTaskSet") == 1
    assert changes.count("ModifyListener") == 3, changes  # 20, 50, then 100 at promotion
    assert changes.count("CreateRule") == 1 and changes.count("DeleteRule") == 1
    # capacity first: every weight raise comes after the scale that carries it
    scales = [i for i, c in enumerate(mine) if c.action == "UpdateTaskSet"]
    weights = [i for i, c in enumerate(mine) if c.action == "ModifyListener"]
    assert len(scales) == 3 and all(s < w for s, w in zip(scales, weights, strict=True)), changes
    registered = [c for c in aws.calls("RegisterTaskDefinition") if c.params.get("family") == site["cluster"]]
    assert len(registered) == 1 and registered[0].params["containerDefinitions"][0]["image"] == "shop/web:2.0"

    shown = json.loads(ecs("status", f"test/{name}", "--json").stdout)
    assert shown["delivery"]["kind"] == "ecs" and shown["delivery"]["instances"] == "tasks"
    assert shown["delivery"]["fields"]["cluster"] == site["cluster"] and shown["delivery"]["family"] == "aws"
    assert {"canaryWeight", "stableReplicas", "canaryReplicas", "actualWeight"} <= set(shown), "the shared fields stay"


async def test_abort_sends_every_request_back_and_removes_the_candidate(ecs, aws, dev_client, unique):
    name, site = f"abort-{unique}", ecs.site
    steps = [{"setWeight": 10},
             {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "x-beta", "headerValue": {"prefix": "yes"}}]}},
             {"pause": {}}]
    assert ecs("start", "-f", ecs.spec(name, "shop/web:3.0", steps=steps)).returncode == 0
    await paused(dev_client, f"test/{name}", 2)
    assert shares(aws, site, **{"x-beta": "yes-please"}) == {"candidate": 100}
    assert shares(aws, site) == {"first": 90, "candidate": 10}

    aborted = ecs("abort", f"test/{name}", "--reason", "bad numbers")
    assert aborted.returncode == 0, aborted.stdout + aborted.stderr
    final = await finished(dev_client.get_workflow_handle(f"rollout/test/{name}"))
    assert final.phase is Phase.DEGRADED and final.reason == "RolloutAborted", final
    assert shares(aws, site) == {"first": 100} and shares(aws, site, **{"x-beta": "yes"}) == {"first": 100}
    assert [ts["externalId"] for ts in task_sets(aws, site)] == ["first"]
    elbv2 = clients(aws.url, site["region"])["elbv2"]
    assert [r["IsDefault"] for r in elbv2.describe_rules(ListenerArn=site["loadBalancer"]["listener"])["Rules"]] == [True]
    service = task_sets_service(aws, site)
    assert not any(t["key"] == "durable-rollouts.dev/rollout" for t in service["tags"]), "the service is released"


def task_sets_service(aws, site: dict) -> dict:
    ecs = clients(aws.url, site["region"])["ecs"]
    arn = ecs.describe_services(cluster=site["cluster"], services=[site["service"]])["services"][0]["serviceArn"]
    return {"arn": arn, "tags": ecs.list_tags_for_resource(resourceArn=arn)["tags"]}


async def test_a_version_that_never_gets_healthy_never_gets_traffic(ecs, aws, dev_client, unique):
    name, site = f"never-{unique}", ecs.site
    aws.controller.behave(f"shop/web:never-{unique}", ready="never")
    assert ecs("start", "-f", ecs.spec(name, f"shop/web:never-{unique}", deadline=10)).returncode == 0
    final = await finished(dev_client.get_workflow_handle(f"rollout/test/{name}"))
    assert final.phase is Phase.DEGRADED and final.reason == "ProgressDeadlineExceeded", final
    assert "0 healthy targets" in final.message and "1/1 tasks running" in final.message, final.message
    listener = site["loadBalancer"]["listener"]
    raised = [c for c in aws.calls("ModifyListener", listener=listener)
              if any(int(g["Weight"]) > 0 and g["TargetGroupArn"] != site["loadBalancer"]["targetGroups"][0]
                     for a in c.params["DefaultActions"] for g in a.get("ForwardConfig", {}).get("TargetGroups", []))]
    assert raised == [], "no request was ever sent to the unhealthy side"
    assert shares(aws, site) == {"first": 100} and [ts["externalId"] for ts in task_sets(aws, site)] == ["first"]


async def test_a_service_another_rollout_holds_is_refused(ecs, aws, dev_client, unique):
    site = ecs.site
    first, second = f"one-{unique}", f"two-{unique}"
    assert ecs("start", "-f", ecs.spec(first, "shop/web:4.0")).returncode == 0
    await paused(dev_client, f"test/{first}", 1)
    assert ecs("start", "-f", ecs.spec(second, "shop/web:5.0")).returncode == 0
    final = await finished(dev_client.get_workflow_handle(f"rollout/test/{second}"))
    assert final.phase is Phase.DEGRADED and final.reason == "InvalidTarget", final
    assert f"rollout/test/{first} is delivering to it" in final.message
    assert shares(aws, site) == {"first": 80, "candidate": 20}, "the first rollout's canary is untouched"
    assert ecs("abort", f"test/{first}", "--reason", "done here").returncode == 0
    await finished(dev_client.get_workflow_handle(f"rollout/test/{first}"))


ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:{}"
TARGET = ECS_TARGET


@pytest.mark.parametrize(("change", "field"), [
    ({"strategy": {"canary": {"steps": [{"setMirrorRoute": {"name": "m", "percentage": 10}}]}}},
     "spec.strategy.canary.steps[0].setMirrorRoute: needs a router that mirrors"),
    ({"strategy": {"canary": {"steps": [{"setHeaderRoute": {"name": "h", "match": [
        {"headerName": "x", "headerValue": {"regex": "a.*"}}]}}]}}},
     "spec.strategy.canary.steps[0].setHeaderRoute.match[0].headerValue.regex: an ALB matches exact values"),
    ({"strategy": {"canary": {"steps": [{"setHeaderRoute": {"name": "h", "match": [
        {"cookieName": "beta", "cookieValue": "always"}]}}]}}},
     "spec.strategy.canary.steps[0].setHeaderRoute.match[0].cookieName: an ALB rule matches headers"),
    ({"strategy": {"canary": {"stableService": "web", "steps": [{"setWeight": 5}]}}},
     "spec.strategy.canary.stableService: an ECS target routes through its load balancer"),
    ({"strategy": {"canary": {"trafficRouting": {"nginx": {"stableIngress": "web"}}, "steps": [{"setWeight": 5}]}}},
     "spec.strategy.canary.trafficRouting: an ECS target routes through its load balancer"),
    ({"strategy": {"blueGreen": {"activeService": "web"}}}, "spec.strategy.blueGreen.activeService: an ECS target routes"),
    ({"rollbackWindow": {"duration": "10m", "revisions": 2}},
     "spec.rollbackWindow.revisions: the ecs target keeps at most 1 revision warm"),
    ({"rollbackWindow": {"duration": "10m", "service": "web"}}, "spec.rollbackWindow.service: a Kubernetes field"),
    ({"target": {"ecs": {**TARGET, "region": "eu-west-1"}}},
     "spec.target.ecs.loadBalancer.listener: in region us-east-1, the target is in eu-west-1"),
    ({"target": {"ecs": {**TARGET, "loadBalancer": {**TARGET["loadBalancer"], "listener": ARN.format("targetgroup/a/1")}}}},
     "spec.target.ecs.loadBalancer.listener: not an ELBv2 listener ARN"),
    ({"target": {"ecs": {**TARGET, "loadBalancer": {**TARGET["loadBalancer"],
                                                     "rule": ARN.format("listener-rule/app/other/1/2/3")}}}},
     "spec.target.ecs.loadBalancer.rule: not a rule of loadBalancer.listener"),
])
def test_what_an_ecs_target_cannot_do_is_refused_naming_the_field(tmp_path, change, field):
    document = ecs_document("web", TARGET, "shop/web:2.0")
    document["spec"].update(change)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(document))
    result = subprocess.run([sys.executable, "-m", "starters.cli", "validate", "-f", str(path)], capture_output=True,
                            text=True, cwd=REPO, timeout=60)
    assert result.returncode == 2 and field in result.stderr, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_the_stand_in_is_stricter_than_moto(aws, unique):
    """What moto accepts and the services refuse (or moto gets wrong silently), refused by the stand-in."""
    from botocore.config import Config
    from botocore.exceptions import ClientError

    site = new_ecs_service(aws.url, f"strict-{unique}", controller=aws.controller)
    import boto3

    made = {"endpoint_url": aws.url, "region_name": "us-east-1", "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing", "config": Config(retries={"max_attempts": 1})}
    ecs, elbv2 = boto3.client("ecs", **made), boto3.client("elbv2", **made)
    (first,) = task_sets(aws, site)
    groups = site["loadBalancer"]["targetGroups"]
    refused = {
        "weight 1000": lambda: elbv2.modify_listener(ListenerArn=site["loadBalancer"]["listener"], DefaultActions=[
            {"Type": "forward", "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": groups[0], "Weight": 1000}]}}]),
        "scale 150": lambda: ecs.update_task_set(cluster=site["cluster"], service=site["service"],
                                                 taskSet=first["taskSetArn"], scale={"value": 150, "unit": "PERCENT"}),
        "primary by id": lambda: ecs.update_service_primary_task_set(cluster=site["cluster"], service=site["service"],
                                                                     primaryTaskSet=first["id"]),
        "image on an EXTERNAL service": lambda: ecs.update_service(cluster=site["cluster"], service=site["service"],
                                                                   taskDefinition=first["taskDefinition"]),
        "unknown task set": lambda: ecs.delete_task_set(cluster=site["cluster"], service=site["service"],
                                                        taskSet="ecs-svc/0", force=True),
    }
    for what, call in refused.items():
        with pytest.raises(ClientError) as error:
            call()
        assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400, what
    assert shares(aws, site) == {"first": 100}, "nothing refused reached moto"


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
                {"id": "rate", "expression": "errors / requests * 100"}]}}}]},
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
    assert "rate=errors / requests * 100" in measured.query and '"rate": [' in measured.value, measured
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
    cell.figures.update(kills=len(kills), restarts=supervisor.restarts)
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
