"""A canary on ECS from the CLI: a service with the EXTERNAL deployment controller on moto's server (stricter
than ECS and ELBv2, with a call log) and the controller that plays ECS's scheduler and the ALB's data plane
(localcluster/awsstandin.py, ecscontroller.py); `rollout worker --targets aws` as its own process, the dev
server. Traffic is counted per task set by following the listener's live weights; what an ECS target cannot
do is refused naming the field; the stand-in refuses what moto would accept."""

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


async def test_a_task_set_no_rollout_made_is_never_touched(aws, ecs, dev_client, unique):
    """Someone else's task set beside the primary (a person's, another deployment tool's): the rollout stops
    before changing anything — no task set deleted, no weight moved, no holder tag left on the service."""
    site = ecs.site
    c = clients(aws.url, site["region"])
    (first,) = task_sets(aws, site)
    theirs = c["ecs"].create_task_set(
        cluster=site["cluster"], service=site["service"], taskDefinition=first["taskDefinition"], launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {"subnets": site["network"]["subnets"],
                                                      "securityGroups": site["network"]["securityGroups"]}},
        scale={"value": 0.0, "unit": "PERCENT"}, externalId="codedeploy/d-123",
        loadBalancers=[{"targetGroupArn": site["loadBalancer"]["targetGroups"][1], "containerName": "web",
                        "containerPort": 8080}])["taskSet"]
    name = f"stranger-{unique}"
    assert ecs("start", "-f", ecs.spec(name, "shop/web:12.0")).returncode == 0
    final = await finished(dev_client.get_workflow_handle(f"rollout/test/{name}"))
    assert final.phase is Phase.DEGRADED and final.reason == "InvalidTarget", final
    assert "codedeploy/d-123" in final.message and "was not made by a rollout" in final.message
    assert {ts["taskSetArn"] for ts in task_sets(aws, site)} == {first["taskSetArn"], theirs["taskSetArn"]}
    assert task_sets_service(aws, site)["tags"] == [], "no holder tag left behind"
    mine = [c.action for c in aws.calls() if site["cluster"] in str(c.params) and not c.action.startswith(("Describe", "List"))]
    assert mine == [], mine


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


async def test_a_target_group_of_another_load_balancer_is_refused(aws, ecs, dev_client, unique):
    """A document naming another service's production target group as its second side: refused before any
    change — its tasks would otherwise join that service's production traffic."""
    other = new_ecs_service(aws.url, f"other-{unique}", controller=aws.controller)
    name = f"steal-{unique}"
    document = ecs_document(name, ecs.site, "shop/web:13.0")
    groups = document["spec"]["target"]["ecs"]["loadBalancer"]["targetGroups"]
    document["spec"]["target"]["ecs"]["loadBalancer"]["targetGroups"] = [groups[0], other["loadBalancer"]["targetGroups"][0]]
    path = ecs.spec(name, "x:1")
    Path(path).write_text(yaml.safe_dump(document))
    assert ecs("start", "-f", path).returncode == 0
    final = await finished(dev_client.get_workflow_handle(f"rollout/test/{name}"))
    assert final.phase is Phase.DEGRADED and final.reason == "InvalidTarget", final
    assert "also serves load balancer" in final.message, final.message
    assert [ts["externalId"] for ts in task_sets(aws, ecs.site)] == ["first"]
    assert shares(aws, other) == {"first": 100}, "the other service's traffic untouched"
    assert task_sets_service(aws, ecs.site)["tags"] == []


def test_a_header_route_keeps_the_weighted_paths_login(aws, unique, monkeypatch):
    """The weighted path authenticates (an authenticate-cognito action before its forward): the header rule
    does too — a header must not skip the login."""
    from activities.aws import AwsClients
    from activities.targets.ecs import listener
    from models.ecs import EcsTarget
    from models.routing import SetHeaderRoute

    for name, value in aws.environment().items():
        monkeypatch.setenv(name, value)
    site = new_ecs_service(aws.url, f"login-{unique}")
    c = clients(aws.url, site["region"])
    login = {"Type": "authenticate-cognito", "Order": 1, "AuthenticateCognitoConfig": {
        "UserPoolArn": "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_abc", "UserPoolClientId": "id",
        "UserPoolDomain": "shop"}}
    forward = {"Type": "forward", "Order": 2, "ForwardConfig": {"TargetGroups": [
        {"TargetGroupArn": site["loadBalancer"]["targetGroups"][0], "Weight": 100},
        {"TargetGroupArn": site["loadBalancer"]["targetGroups"][1], "Weight": 0}]}}
    c["elbv2"].modify_listener(ListenerArn=site["loadBalancer"]["listener"], DefaultActions=[login, forward])
    target = EcsTarget.model_validate(site)
    route = SetHeaderRoute.model_validate({"name": "beta", "match": [{"headerName": "x-beta", "headerValue": {"exact": "1"}}]})
    elbv2 = AwsClients().elbv2(site["region"])
    assert listener.set_header_rules(elbv2, target, "test/login", [route], site["loadBalancer"]["targetGroups"][1])
    rules = [r for r in c["elbv2"].describe_rules(ListenerArn=site["loadBalancer"]["listener"])["Rules"] if not r["IsDefault"]]
    assert [a["Type"] for a in rules[0]["Actions"]] == ["authenticate-cognito", "forward"], rules[0]["Actions"]
    assert not listener.set_header_rules(elbv2, target, "test/login", [route], site["loadBalancer"]["targetGroups"][1])
