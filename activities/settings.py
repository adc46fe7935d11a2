"""Where activities read what must not travel through workflows (secrets, group membership, webhook
URLs): an environment variable per name, or a YAML mapping in a file an environment variable names."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from temporalio.exceptions import ApplicationError


def env_name(prefix: str, name: str) -> str:
    """`checkToken`, `check-token` and `check_token` under ROLLOUT_SECRET_ are all ROLLOUT_SECRET_CHECK_TOKEN."""
    return prefix + re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper().replace("-", "_").replace(".", "_")


def mapping_file(variable: str) -> dict[str, Any]:
    """The YAML mapping in the file `$variable` names ({} when unset). Errors name the file, never its content."""
    path = os.environ.get(variable)
    if not path:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ApplicationError(f"${variable} {path}: {type(error).__name__}", type="Invalid",
                               non_retryable=True) from None
    if not isinstance(data, dict):
        raise ApplicationError(f"${variable} {path}: must be a YAML mapping", type="Invalid", non_retryable=True)
    return {str(k): v for k, v in data.items()}
