"""What moto does not do for ECS and the ALB (docs/research/ecs-on-moto.md): moto stores task sets and
listener weights faithfully but has no controller and no data plane. This controller, in the process that
runs moto, plays both for EXTERNAL services:

- **Task sets → tasks**: every task set gets `computedDesiredCount = ceil(desiredCount × scale / 100)`
  tasks (moto: floor, only at creation); a new task is PENDING for `start_delay` seconds, then RUNNING; the
  task set's `runningCount`, `pendingCount`, `computedDesiredCount` and `stabilityStatus` (STABILIZING
  until every task runs and is healthy) are written on moto's object, which its responses then carry.
- **Targets**: a running task's IP is registered in its task set's target group once it is healthy
  (`healthy_delay` later) and deregistered when the task stops or its task set is deleted. moto reports every
  registered target `healthy` at once, so an image that never becomes healthy (`behave(pattern,
  ready="never")`) is simply never registered — the ALB would list it `unhealthy`; moto cannot.
- **Traffic** (`route`): requests sent through a listener as the ALB would — rules by priority, their
  http-header and path-pattern conditions (wildcards, case-insensitive values), then the forward action's
  weights — counted per task set. It reads ELBv2 through the API with its own credentials, which the call
  log leaves out.

- **ALB metrics** (`route(..., metrics=True)`): RequestCount and HTTPCode_Target_5XX_Count per target group
  put to CloudWatch (moto produces no ALB metrics), the errors from each image's `error_rate`.

Not simulated: deregistration delay (targets leave at once), placement, task failures other than
"never healthy", latency metrics."""

from __future__ import annotations

import fnmatch
import ipaddress
import itertools
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import boto3

from localcluster.awsrules import ACCOUNT, OBSERVER_KEY
from localcluster.behaviour import Behaviour

_ADDRESSES = (str(ip) for ip in ipaddress.ip_network("10.77.0.0/16").hosts())


@dataclass
class Task:
    ip: str
    started: float
    running: bool = False
    registered: bool = False


class EcsController:
    def __init__(self, url: str, regions: tuple[str, ...] = ("us-east-1",), start_delay: float = 0.3,
                 healthy_delay: float = 0.3, period: float = 0.1) -> None:
        self.url, self.regions = url, regions
        self.start_delay, self.healthy_delay, self.period = start_delay, healthy_delay, period
        self.tasks: dict[str, list[Task]] = {}  # task set ARN -> its tasks
        self.groups: dict[str, tuple[str, str, int]] = {}  # task set ARN -> (region, target group, port)
        self.behaviours: list[tuple[str, Behaviour]] = []
        self.images: dict[str, str] = {}  # task set ARN -> the image its tasks run
        self.healthy_at: dict[str, list[float]] = {}  # task set ARN -> when each of its targets became healthy
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="ecs-controller", daemon=True)

    def start(self) -> EcsController:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def behave(self, pattern: str, **behaviour: Any) -> None:
        """Images matching `pattern` (fnmatch) behave so: `ready="never"`, `ready_delay_seconds=…`."""
        with self._lock:
            self.behaviours.insert(0, (pattern, Behaviour(**behaviour)))

    def _for_image(self, image: str) -> Behaviour:
        with self._lock:
            return next((b for pattern, b in self.behaviours if fnmatch.fnmatchcase(image, pattern)), Behaviour())

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.reconcile()
            except Exception:  # noqa: BLE001 - a request changed moto's objects under us: next tick
                continue

    def reconcile(self) -> None:
        from moto.ecs.models import ecs_backends
        from moto.elbv2.models import elbv2_backends

        seen: set[str] = set()
        for region in self.regions:
            ecs, elbv2 = ecs_backends[ACCOUNT][region], elbv2_backends[ACCOUNT][region]
            for service in list(ecs.services.values()):
                if service.deployment_controller.get("type") != "EXTERNAL":
                    continue
                for task_set in list(service.task_sets):
                    seen.add(task_set.task_set_arn)
                    self._task_set(ecs, elbv2, region, service, task_set)
        for arn in [arn for arn in self.tasks if arn not in seen]:  # deleted: its tasks stop, targets leave
            region, group, port = self.groups.pop(arn, ("", "", 0))
            for task in self.tasks.pop(arn):
                self._deregister(elbv2_backends[ACCOUNT][region] if region else None, group, port, task)

    def _task_set(self, ecs: Any, elbv2: Any, region: str, service: Any, task_set: Any) -> None:
        want = math.ceil(service.desired_count * float(task_set.scale.get("value", 0)) / 100)  # no tolerance: ECS's
        balancer = (task_set.load_balancers or [{}])[0]
        group, port = balancer.get("targetGroupArn", ""), int(balancer.get("containerPort") or 0)
        self.groups[task_set.task_set_arn] = (region, group, port)
        definition = ecs.describe_task_definition(task_set.task_definition)
        image = next((c.get("image", "") for c in definition.container_definitions
                      if c.get("name") == balancer.get("containerName")), "")
        behaviour = self._for_image(image)
        self.images[task_set.task_set_arn] = image
        tasks = self.tasks.setdefault(task_set.task_set_arn, [])
        now = time.monotonic()
        while len(tasks) < want:
            tasks.append(Task(next(_ADDRESSES), now))
        while len(tasks) > want:
            self._deregister(elbv2, group, port, tasks.pop())
        healthy_after = self.start_delay + (behaviour.ready_delay_seconds if behaviour.ready_delay_seconds is not None
                                            else self.healthy_delay)
        for task in tasks:
            task.running = task.running or now - task.started >= self.start_delay
            if task.running and not task.registered and behaviour.ready == "yes" and now - task.started >= healthy_after:
                if group:
                    elbv2.register_targets(group, [{"Id": task.ip, "Port": port}])
                task.registered = True
                self.healthy_at.setdefault(task_set.task_set_arn, []).append(time.monotonic())
        running = sum(task.running for task in tasks)
        task_set.computed_desired_count, task_set.running_count, task_set.pending_count = want, running, want - running
        steady = running == want and all(task.registered for task in tasks)
        if task_set.stabilityStatus != ("STEADY_STATE" if steady else "STABILIZING"):
            task_set.stabilityStatus = "STEADY_STATE" if steady else "STABILIZING"

    @staticmethod
    def _deregister(elbv2: Any, group: str, port: int, task: Task) -> None:
        if task.registered and elbv2 is not None and group in elbv2.target_groups:
            elbv2.target_groups[group].targets.pop(task.ip, None)

    # ---- traffic ---------------------------------------------------------------------------------------
    def route(self, listener: str, requests: int = 100, headers: dict[str, str] | None = None,
              path: str = "/", metrics: bool = False) -> Counter:
        """Send `requests` requests through `listener`; count them per task set ARN ("503": no healthy target).
        `metrics`: also put what the ALB would report to CloudWatch (namespace AWS/ApplicationELB, per target
        group: RequestCount, and HTTPCode_Target_5XX_Count from each image's `error_rate`)."""
        region = listener.split(":")[3]
        elbv2 = boto3.client("elbv2", endpoint_url=self.url, region_name=region, aws_access_key_id=OBSERVER_KEY,
                             aws_secret_access_key="testing")
        rules = elbv2.describe_rules(ListenerArn=listener)["Rules"]
        rules.sort(key=lambda r: (r.get("IsDefault", False), int(r["Priority"]) if r["Priority"] != "default" else 0))
        rule = next(r for r in rules if all(_matches(c, headers or {}, path) for c in r.get("Conditions", [])))
        forward = next(a for a in rule["Actions"] if a["Type"] == "forward")
        groups = (forward.get("ForwardConfig") or {}).get("TargetGroups") or [{"TargetGroupArn": forward["TargetGroupArn"]}]
        weighted = [(g["TargetGroupArn"], int(g.get("Weight", 1))) for g in groups if int(g.get("Weight", 1)) > 0]
        total = sum(weight for _, weight in weighted)
        counts: Counter = Counter()
        served: Counter = Counter()  # per target group
        cycles = {group: itertools.cycle(self._targets(elbv2, group) or ["503"]) for group, _ in weighted}
        for index in range(requests):  # request i goes where (i + 0.5) / requests falls in the weights
            point, edge = (index + 0.5) / requests * total, 0
            for group, weight in weighted:
                edge += weight
                if point < edge:
                    counts[next(cycles[group])] += 1
                    served[group] += 1
                    break
        if metrics:
            self._report(region, listener, served, counts)
        return counts

    def _report(self, region: str, listener: str, served: Counter, counts: Counter) -> None:
        balancer = "/".join(listener.split(":listener/", 1)[1].split("/")[:3])  # app/<name>/<id>
        errors: Counter = Counter()
        for arn, count in counts.items():
            if arn != "503":
                group = self.groups.get(arn, ("", "", 0))[1]
                errors[group] += round(count * self._for_image(self.images.get(arn, "")).error_rate)
        data = []
        for group, count in served.items():
            dimensions = [{"Name": "LoadBalancer", "Value": balancer},
                          {"Name": "TargetGroup", "Value": group.split(":", 5)[-1]}]
            data.append({"MetricName": "RequestCount", "Dimensions": dimensions, "Value": count, "Unit": "Count"})
            if errors[group]:  # as the ALB: an error count is published only when there were errors
                data.append({"MetricName": "HTTPCode_Target_5XX_Count", "Dimensions": dimensions,
                             "Value": errors[group], "Unit": "Count"})
        if data:
            boto3.client("cloudwatch", endpoint_url=self.url, region_name=region, aws_access_key_id=OBSERVER_KEY,
                         aws_secret_access_key="testing").put_metric_data(Namespace="AWS/ApplicationELB", MetricData=data)

    def _targets(self, elbv2: Any, group: str) -> list[str]:
        """The task sets of the healthy targets of `group`, one entry per target."""
        healthy = {h["Target"]["Id"] for h in elbv2.describe_target_health(TargetGroupArn=group)["TargetHealthDescriptions"]
                   if h["TargetHealth"]["State"] == "healthy"}
        return [arn for arn, tasks in list(self.tasks.items()) for task in tasks if task.ip in healthy]


def _matches(condition: dict[str, Any], headers: dict[str, str], path: str) -> bool:
    field = condition["Field"]
    if field == "http-header":
        config = condition["HttpHeaderConfig"]
        value = {k.lower(): v for k, v in headers.items()}.get(config["HttpHeaderName"].lower())
        return value is not None and any(fnmatch.fnmatch(value.lower(), v.lower()) for v in config["Values"])
    if field == "path-pattern":
        values = (condition.get("PathPatternConfig") or {}).get("Values") or condition.get("Values") or []
        return any(fnmatch.fnmatchcase(path, v) for v in values)
    return False  # a condition this simulator does not know never matches
