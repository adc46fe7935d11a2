"""Secrets in specs are placeholders, `{{secrets.NAME}}`, filled in here, inside the activity that
needs them, from `ROLLOUT_SECRET_<NAME>` (`checkToken` → `ROLLOUT_SECRET_CHECK_TOKEN`) or the YAML file
`$DURABLE_ROLLOUTS_SECRETS_FILE` (`{NAME: value}`). The filled text is only ever sent to its target:
what the activity returns (and so what the workflow's history keeps) is built from the template."""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml
from temporalio.exceptions import ApplicationError

SECRET = re.compile(r"\{\{\s*secrets\.([A-Za-z0-9_-]+)\s*\}\}")
SECRETS_FILE = "DURABLE_ROLLOUTS_SECRETS_FILE"


def _env_name(name: str) -> str:
    """`checkToken`, `check-token` and `check_token` are all $ROLLOUT_SECRET_CHECK_TOKEN."""
    return "ROLLOUT_SECRET_" + re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper().replace("-", "_")


def _from_file() -> dict[str, str]:
    path = os.environ.get(SECRETS_FILE)
    if not path:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ApplicationError(f"${SECRETS_FILE} {path}: {type(error).__name__}", type="Invalid",
                               non_retryable=True) from None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def reveal(text: str) -> str:
    """`text` with every `{{secrets.NAME}}` filled in; a secret nobody defined is a non-retryable error
    naming it and where it was looked for (never its value)."""
    if "secrets." not in text:
        return text
    stored = None

    def value(match: re.Match) -> str:
        nonlocal stored
        name = match.group(1)
        if os.environ.get(_env_name(name)):
            return os.environ[_env_name(name)]
        stored = _from_file() if stored is None else stored
        if name in stored:
            return stored[name]
        raise ApplicationError(f"secret {name!r} is not set: ${_env_name(name)} or ${SECRETS_FILE}",
                               type="Invalid", non_retryable=True)

    return SECRET.sub(value, text)
