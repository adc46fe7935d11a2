"""A service to deliver to on the AWS stand-in: an ALB with a production and a test listener, two `ip`
target groups, an ECS cluster and an EXTERNAL service whose first task set (the image given) is primary
and serves all traffic — what a team has before its first rollout. Made with the stand-in's own
credentials, so the call log holds only what the product asks."""

from __future__ import annotations

import math
import time
from typing import Any

import boto3

from localcluster.awsrules import OBSERVER_KEY


def clients(url: str, region: str) -> dict[str, Any]:
    made = {"endpoint_url": url, "region_name": region, "aws_access_key_id": OBSERVER_KEY, "aws_secret_access_key": "testing"}
    return {name: boto3.client(name, **made) for name in ("ec2", "elbv2", "ecs", "cloudwatch")}


def new_ecs_service(url: str, name: str, region: str = "us-east-1", desired: int = 4, image: str = "shop/web:1.0",
                    port: int = 8080, controller: Any = None) -> dict[str, Any]:
    """Make the service; returns the rollout's `target.ecs` block. With `controller`, waits until the first
    task set runs and its targets are healthy."""
    c = clients(url, region)
    vpc = c["ec2"].describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    subnets = [s["SubnetId"] for s in c["ec2"].describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]][:2]
    group = c["ec2"].create_security_group(GroupName=f"{name}-tasks", Description="tasks", VpcId=vpc)["GroupId"]
    balancer = c["elbv2"].create_load_balancer(Name=name[:32], Subnets=subnets, Type="application")["LoadBalancers"][0]
    groups = [c["elbv2"].create_target_group(Name=f"{name[:28]}-{side}", Protocol="HTTP", Port=port, VpcId=vpc,
                                             TargetType="ip")["TargetGroups"][0]["TargetGroupArn"] for side in ("a", "b")]

    def forward(weights: tuple[int, int]) -> list[dict[str, Any]]:
        return [{"Type": "forward", "ForwardConfig": {"TargetGroups": [
            {"TargetGroupArn": arn, "Weight": weight} for arn, weight in zip(groups, weights, strict=True)]}}]

    listener = c["elbv2"].create_listener(LoadBalancerArn=balancer["LoadBalancerArn"], Protocol="HTTP", Port=80,
                                          DefaultActions=forward((100, 0)))["Listeners"][0]["ListenerArn"]
    test = c["elbv2"].create_listener(LoadBalancerArn=balancer["LoadBalancerArn"], Protocol="HTTP", Port=8443,
                                      DefaultActions=forward((0, 100)))["Listeners"][0]["ListenerArn"]
    c["ecs"].create_cluster(clusterName=name)
    c["ecs"].create_service(cluster=name, serviceName=name, desiredCount=desired, deploymentController={"type": "EXTERNAL"})
    definition = c["ecs"].register_task_definition(
        family=name, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
        containerDefinitions=[{"name": "web", "image": image, "memory": 256, "essential": True,
                               "portMappings": [{"containerPort": port, "protocol": "tcp"}]}])["taskDefinition"]
    network = {"awsvpcConfiguration": {"subnets": subnets, "securityGroups": [group], "assignPublicIp": "DISABLED"}}
    task_set = c["ecs"].create_task_set(
        cluster=name, service=name, taskDefinition=definition["taskDefinitionArn"], launchType="FARGATE",
        networkConfiguration=network, scale={"value": 0.0, "unit": "PERCENT"}, externalId="first",
        loadBalancers=[{"targetGroupArn": groups[0], "containerName": "web", "containerPort": port}])["taskSet"]
    c["ecs"].update_task_set(cluster=name, service=name, taskSet=task_set["taskSetArn"], scale={"value": 100.0, "unit": "PERCENT"})
    c["ecs"].update_service_primary_task_set(cluster=name, service=name, primaryTaskSet=task_set["taskSetArn"])
    if controller is not None:
        wait_steady(c["ecs"], name)
    return {"region": region, "cluster": name, "service": name, "container": "web",
            "loadBalancer": {"listener": listener, "testListener": test, "targetGroups": groups, "containerPort": port},
            "network": {"subnets": subnets, "securityGroups": [group]}}


def wait_steady(ecs: Any, name: str, timeout: float = 30) -> None:
    """Until every task set runs the tasks its scale asks for, its targets healthy. The count is worked out here:
    moto computes it only when a task set is made (0 for one made at scale 0) and calls it STEADY_STATE, so
    until the controller's next pass a set scaled up since looked settled with no target (run 54)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        service = ecs.describe_services(cluster=name, services=[name])["services"][0]
        sets = service["taskSets"]
        if sets and all(ts.get("stabilityStatus") == "STEADY_STATE" and ts.get("runningCount") == ts.get(
                "computedDesiredCount") == math.ceil(service["desiredCount"] * float(ts["scale"]["value"]) / 100)
                        for ts in sets):
            return
        time.sleep(0.1)
    raise TimeoutError(f"ecs service {name} did not settle in {timeout}s")
