"""What the ECS tests read of the AWS stand-in: where requests go, the service's task sets, a rollout's pause."""

from __future__ import annotations

from pathlib import Path

from localcluster.ecssite import clients
from models.status import Phase, RolloutStatus
from tests.helpers import eventually

REPO = Path(__file__).resolve().parent.parent.parent


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

