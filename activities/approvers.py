"""Who is in an approver group: read where people are managed, never from the spec.

`$DURABLE_ROLLOUTS_GROUPS` names a YAML file `{group: [user, ...]}`; `ROLLOUT_GROUP_<NAME>` (upper
case, `-` as `_`) is a comma-separated list and wins over the file. A group found in neither is an
error that names the group and where it was looked for."""

from __future__ import annotations

import os

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.settings import env_name, mapping_file

GROUPS_FILE = "DURABLE_ROLLOUTS_GROUPS"
PREFIX = "ROLLOUT_GROUP_"


def _file_groups() -> dict[str, list[str]]:
    data = mapping_file(GROUPS_FILE)
    if not all(isinstance(v, list) for v in data.values()):
        raise ApplicationError(f"${GROUPS_FILE} {os.environ.get(GROUPS_FILE)}: must map each group to a list of "
                               "user names", type="Invalid", non_retryable=True)
    return {k: [str(u) for u in v] for k, v in data.items()}


class ApproverActivities:
    @activity.defn(name="resolve_groups")
    def resolve_groups(self, groups: list[str]) -> dict[str, list[str]]:
        from_file = _file_groups()
        found: dict[str, list[str]] = {}
        for group in groups:
            listed = os.environ.get(env_name(PREFIX, group))
            if listed is not None:
                found[group] = sorted({u.strip() for u in listed.split(",") if u.strip()})
            elif group in from_file:
                found[group] = sorted(set(from_file[group]))
            else:
                where = f"${GROUPS_FILE} ({os.environ.get(GROUPS_FILE) or 'not set'}) or ${env_name(PREFIX, group)}"
                raise ApplicationError(f"approver group {group!r} is not defined in {where}",
                                       type="Invalid", non_retryable=True)
        return found
