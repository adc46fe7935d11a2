"""An ECS service with the EXTERNAL deployment controller and its task sets, as the ECS API reference
describes them: a task set per revision (CreateTaskSet takes the task definition, launch type, network
and load balancer; UpdateTaskSet changes only its scale, in percent of the service's desiredCount,
`computedDesiredCount = ceil(desiredCount × scale / 100)`); UpdateServicePrimaryTaskSet marks the one that
serves production; DeleteTaskSet removes one (`force` when it still has tasks), which then drains (status
DRAINING while its targets deregister: counted as gone here). Which task set is ours is its externalId;
what it replaces (the primary's ARN and task definition when it was made) are tags on it, so a promotion
deletes exactly that task set and an undo goes back to exactly that revision; which rollout holds the
service is a tag on the service."""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from temporalio.exceptions import ApplicationError

from activities.aws import aws_errors, invalid
from activities.waiting import still_waiting, wait_started
from models.ecs import EcsTarget

HOLDER_TAG = "durable-rollouts.dev/rollout"
REPLACES_TAG = "durable-rollouts.dev/replaces"  # the primary task set's ID (ecs-svc/…) when this one was made
PREVIOUS_TAG = "durable-rollouts.dev/previous-task-definition"  # that primary's task definition
# RegisterTaskDefinition's parameters a revision copies from the one it replaces (the API reference's).
_REGISTERED = ("family", "taskRoleArn", "executionRoleArn", "networkMode", "containerDefinitions", "volumes",
               "placementConstraints", "requiresCompatibilities", "cpu", "memory", "pidMode", "ipcMode",
               "proxyConfiguration", "inferenceAccelerators", "ephemeralStorage", "runtimePlatform",
               "enableFaultInjection")


@dataclass
class Service:
    arn: str
    desired: int
    task_sets: list[dict[str, Any]]  # without the DRAINING ones
    draining: list[dict[str, Any]] = field(default_factory=list)  # deleted, their targets still leaving

    def primary(self) -> dict[str, Any] | None:
        return next((ts for ts in self.task_sets if ts.get("status") == "PRIMARY"), None)

    def external(self, external_id: str) -> dict[str, Any] | None:
        return next((ts for ts in self.task_sets if ts.get("externalId") == external_id), None)

    def by_id(self, task_set_id: str) -> dict[str, Any] | None:
        return next((ts for ts in self.task_sets if task_set_id and ts.get("id") == task_set_id), None)


def primary_behind_group(t: EcsTarget, service: Service) -> dict[str, Any]:
    """The primary task set, which must be behind a target group (what every update starts from)."""
    primary = service.primary()
    if primary is None or not primary.get("loadBalancers"):
        raise invalid(f"{where(t)}: has no primary task set behind a target group")
    return primary


def tag(task_set: dict[str, Any], key: str) -> str:
    return next((t["value"] for t in task_set.get("tags") or [] if t.get("key") == key), "")


def where(t: EcsTarget) -> str:
    return f"ecs service {t.region}/{t.cluster}/{t.service}"


def made_here(task_set: dict[str, Any]) -> bool:
    """Whether a rollout made this task set (its externalId says so; a task set someone else made is theirs)."""
    return str(task_set.get("externalId", "")).startswith("durable-rollouts/")


def refuse_strangers(t: EcsTarget, service: Service) -> None:
    """A task set beside the primary that no rollout made (a person's, another deployment tool's) is never
    ours to scale or remove: the rollout stops before changing anything."""
    primary = service.primary()
    for task_set in service.task_sets:
        if task_set is not primary and not made_here(task_set):
            raise invalid(f"{where(t)}: task set {task_set['taskSetArn'].rsplit('/', 1)[-1]} (externalId "
                          f"{task_set.get('externalId') or 'none'}) runs beside the primary and was not made by a "
                          "rollout: remove it first")


def external_id(rollout_id: str, image: str) -> str:
    """Our task set's externalId: the rollout and which image it runs (a retry finds its own)."""
    return f"durable-rollouts/{rollout_id}/{hashlib.sha256(image.encode()).hexdigest()[:12]}"


def client_token(external: str, what: str) -> str:
    """CreateTaskSet's idempotency token (at most 36 ASCII characters, unique per creation): the same for
    every attempt of one activity in one workflow run, another for a later run (a retried rollout)."""
    from temporalio import activity

    run = activity.info().workflow_run_id if activity.in_activity() else ""
    return hashlib.sha256(f"{external}/{what}/{run}".encode()).hexdigest()[:32]


def read_service(ecs: Any, t: EcsTarget) -> Service:
    """The service and its task sets with their tags; a DRAINING task set (deleted, its targets leaving) is gone."""
    with aws_errors(where(t)):
        answer = ecs.describe_services(cluster=t.cluster, services=[t.service])
        services = [s for s in answer.get("services", []) if s.get("status") == "ACTIVE"]
        if not services:
            reason = (answer.get("failures") or [{}])[0].get("reason", "not found")  # MISSING, or INACTIVE
            raise ApplicationError(f"{where(t)}: {reason}", type="NotFound", non_retryable=True)
        service = services[0]
        controller = (service.get("deploymentController") or {}).get("type", "ECS")
        if controller != "EXTERNAL":
            raise invalid(f"{where(t)}: its deployment controller is {controller}; task sets need EXTERNAL")
        sets = ecs.describe_task_sets(cluster=t.cluster, service=t.service, include=["TAGS"]).get("taskSets", []) \
            if service.get("taskSets") else []
    return Service(service["serviceArn"], int(service.get("desiredCount") or 0),
                   [ts for ts in sets if ts.get("status") != "DRAINING"],
                   [ts for ts in sets if ts.get("status") == "DRAINING"])


def hold(ecs: Any, t: EcsTarget, service: Service, rollout_id: str) -> None:
    """Tag the service as this rollout's; refuse it if another rollout holds it."""
    with aws_errors(where(t)):
        tags = {tag["key"]: tag["value"] for tag in ecs.list_tags_for_resource(resourceArn=service.arn).get("tags", [])}
        holder = tags.get(HOLDER_TAG)
        if holder and holder != rollout_id:
            raise invalid(f"{where(t)}: {holder} is delivering to it (tag {HOLDER_TAG})")
        if holder != rollout_id:
            ecs.tag_resource(resourceArn=service.arn, tags=[{"key": HOLDER_TAG, "value": rollout_id}])


@contextlib.contextmanager
def holding(ecs: Any, t: EcsTarget, service: Service, rollout_id: str, undone_after: bool = False) -> Iterator[None]:
    """Hold the service for the changes inside. A failure releases it — the workflow ends without a step
    that would (a retry takes it again) — except, with `undone_after`, a failure the workflow answers with
    an undo (anything but a refusal of the target), which needs the service held until it releases it."""
    hold(ecs, t, service, rollout_id)
    try:
        yield
    except Exception as error:
        refused = isinstance(error, ApplicationError) and error.type in ("InvalidTarget", "NotFound", "Forbidden")
        if not undone_after or refused:
            release(ecs, t, service, rollout_id)
        raise


def release(ecs: Any, t: EcsTarget, service: Service, rollout_id: str) -> None:
    with aws_errors(where(t)):
        tags = {tag["key"]: tag["value"] for tag in ecs.list_tags_for_resource(resourceArn=service.arn).get("tags", [])}
        if tags.get(HOLDER_TAG) == rollout_id:
            ecs.untag_resource(resourceArn=service.arn, tagKeys=[HOLDER_TAG])


def container_image(ecs: Any, t: EcsTarget, task_definition: str) -> str:
    with aws_errors(f"task definition {task_definition}"):
        definition = ecs.describe_task_definition(taskDefinition=task_definition)["taskDefinition"]
    return _container(t, definition)["image"]


def _container(t: EcsTarget, definition: dict[str, Any]) -> dict[str, Any]:
    for container in definition.get("containerDefinitions", []):
        if container.get("name") == t.container:
            return container
    raise invalid(f"task definition {definition.get('taskDefinitionArn')}: no container {t.container!r}")


def revision_with(ecs: Any, t: EcsTarget, base: str, image: str) -> str:
    """A task definition like `base` with the container's image set to `image`: `base` itself, the family's
    latest revision when it is exactly that (a retry), or a new revision registered from `base`."""
    with aws_errors(f"task definition {base}"):
        described = ecs.describe_task_definition(taskDefinition=base, include=["TAGS"])
    definition = described["taskDefinition"]
    tags = [x for x in described.get("tags") or [] if not x["key"].lower().startswith("aws:")]  # aws: ones are AWS's
    wanted = _registered(t, definition, image) | ({"tags": tags} if tags else {})
    if _container(t, definition)["image"] == image:
        return definition["taskDefinitionArn"]
    with aws_errors(f"task definition family {definition['family']}"):
        latest = ecs.describe_task_definition(taskDefinition=definition["family"])["taskDefinition"]
        if _registered(t, latest, None) == {k: v for k, v in wanted.items() if k != "tags"}:
            return latest["taskDefinitionArn"]
        return ecs.register_task_definition(**wanted)["taskDefinition"]["taskDefinitionArn"]


def _registered(t: EcsTarget, definition: dict[str, Any], image: str | None) -> dict[str, Any]:
    """RegisterTaskDefinition's parameters for `definition`, the container's image set to `image` if given."""
    found = {key: definition[key] for key in _REGISTERED if definition.get(key) not in (None, [], {})}
    found["containerDefinitions"] = [{**c, "image": image} if c.get("name") == t.container and image else c
                                     for c in definition.get("containerDefinitions", [])]
    _container(t, found)
    return found


def ensure_task_set(ecs: Any, t: EcsTarget, service: Service, external: str, task_definition: str,
                    target_group: str, scale: float, replaces: dict[str, Any] | None = None) -> dict[str, Any]:
    """Our task set (by externalId), created at `scale` percent behind `target_group` when missing, tagged
    with what it `replaces` (the primary task set when it was made)."""
    found = service.external(external)
    if found is not None:
        return found
    tags = [{"key": REPLACES_TAG, "value": replaces["id"]},
            {"key": PREVIOUS_TAG, "value": replaces["taskDefinition"]}] if replaces else []
    network = {"awsvpcConfiguration": {"subnets": list(t.network.subnets), "securityGroups": list(t.network.security_groups),
                                       "assignPublicIp": "ENABLED" if t.network.assign_public_ip else "DISABLED"}}
    with aws_errors(where(t)):
        return ecs.create_task_set(
            service=t.service, cluster=t.cluster, externalId=external, taskDefinition=task_definition,
            networkConfiguration=network, launchType=t.launch_type, scale={"value": scale, "unit": "PERCENT"},
            loadBalancers=[{"targetGroupArn": target_group, "containerName": t.container,
                            "containerPort": t.load_balancer.container_port}],
            clientToken=client_token(external, "create"), **({"tags": tags} if tags else {}))["taskSet"]


def set_scale(ecs: Any, t: EcsTarget, task_set: dict[str, Any], percent: float, known: bool = True) -> bool:
    """UpdateTaskSet when the scale differs from the one `task_set` was read with (`known=False`: that
    reading is stale, send it); whether it sent."""
    if known and float((task_set.get("scale") or {}).get("value", -1)) == percent:
        return False
    with aws_errors(where(t)):
        ecs.update_task_set(cluster=t.cluster, service=t.service, taskSet=task_set["taskSetArn"],
                            scale={"value": percent, "unit": "PERCENT"})
    return True


def computed(desired: int, percent: float) -> int:
    """ECS's computedDesiredCount: always rounded up."""
    return math.ceil(desired * percent / 100)


def percent_for(count: int, desired: int) -> float:
    """The scale whose computedDesiredCount is `count` whatever the floating point: half a task below it."""
    if count <= 0 or not desired:
        return 0.0
    return 100.0 if count >= desired else 100.0 * (count - 0.5) / desired


def wait_capacity(ecs: Any, elbv2: Any, t: EcsTarget, task_set: dict[str, Any], expected: int,
                  deadline_seconds: int, healthy_needed: int | None = None) -> int:
    """Poll until the task set wants `expected` tasks (what its scale computes to: a count ECS has not
    recomputed yet after UpdateTaskSet is not taken for it), runs them all, and `healthy_needed` targets
    (default: that many; more when other task sets share the target group) are healthy in its target group
    (capacity first: no traffic moves before). Returns the task count."""
    arn = task_set["taskSetArn"]
    target_group = task_set["loadBalancers"][0]["targetGroupArn"]
    name = f"ecs:{arn}:{expected}"  # one wait per count: a retry resumes this wait's clock, not an earlier one's
    started = wait_started(name)
    while True:
        with aws_errors(where(t)):
            sets = ecs.describe_task_sets(cluster=t.cluster, service=t.service, taskSets=[arn]).get("taskSets", [])
            if not sets:
                raise invalid(f"{where(t)}: task set {arn} is gone")
            want = int(sets[0].get("computedDesiredCount", -1))
            running, pending = int(sets[0].get("runningCount", 0)), int(sets[0].get("pendingCount", 0))
            health = elbv2.describe_target_health(TargetGroupArn=target_group)["TargetHealthDescriptions"]
        healthy = sum(1 for h in health if h["TargetHealth"]["State"] == "healthy")
        if want == expected and running == want and pending == 0 and healthy >= (
                want if healthy_needed is None else healthy_needed):
            return want
        waited = time.time() - started
        if waited > deadline_seconds:
            raise _deadline(t, arn, f"{running}/{max(want, 0)} tasks running, {healthy} healthy targets in "
                                    f"{target_group.rsplit(':', 1)[-1]}", waited, deadline_seconds)
        still_waiting(name, started, where(t))
        time.sleep(0.25)


def _deadline(t: EcsTarget, arn: str, state: str, waited: float, deadline: int) -> ApplicationError:
    return ApplicationError(f"{where(t)}: task set {arn.rsplit('/', 1)[-1]}: {state} after {int(waited)}s "
                            f"(progress deadline {deadline}s)", type="ProgressDeadlineExceeded", non_retryable=True)


def delete_task_set(ecs: Any, t: EcsTarget, task_set: dict[str, Any]) -> bool:
    """Delete it (force: its tasks stop while it drains, its targets are deregistered); gone already is done."""
    with aws_errors(where(t)):
        try:
            ecs.delete_task_set(cluster=t.cluster, service=t.service, taskSet=task_set["taskSetArn"], force=True)
        except ecs.exceptions.TaskSetNotFoundException:
            return False
    return True


def make_primary(ecs: Any, t: EcsTarget, task_set: dict[str, Any]) -> bool:
    if task_set.get("status") == "PRIMARY":
        return False
    with aws_errors(where(t)):
        ecs.update_service_primary_task_set(cluster=t.cluster, service=t.service, primaryTaskSet=task_set["taskSetArn"])
    return True
