"""Secrets in specs are placeholders, `{{secrets.NAME}}`, filled in here, inside the activity that
needs them, from `ROLLOUT_SECRET_<NAME>` (`checkToken` → `ROLLOUT_SECRET_CHECK_TOKEN`) or the YAML file
`$DURABLE_ROLLOUTS_SECRETS_FILE` (`{NAME: value}`). The filled text is only ever sent to its target:
what the activity returns (and so what the workflow's history keeps) is built from the template."""

from __future__ import annotations

import os
import re

from temporalio.exceptions import ApplicationError

from activities.settings import env_name, mapping_file

SECRET = re.compile(r"\{\{\s*secrets\.([A-Za-z0-9_-]+)\s*\}\}")
SECRETS_FILE = "DURABLE_ROLLOUTS_SECRETS_FILE"


def reveal(text: str) -> str:
    """`text` with every `{{secrets.NAME}}` filled in; a secret nobody defined is a non-retryable error
    naming it and where it was looked for (never its value)."""
    if "secrets." not in text:
        return text
    stored = None

    def value(match: re.Match) -> str:
        nonlocal stored
        name = match.group(1)
        variable = env_name("ROLLOUT_SECRET_", name)
        if os.environ.get(variable):
            return os.environ[variable]
        stored = mapping_file(SECRETS_FILE) if stored is None else stored
        if name in stored:
            return str(stored[name])
        raise ApplicationError(f"secret {name!r} is not set: ${variable} or ${SECRETS_FILE}",
                               type="Invalid", non_retryable=True)

    return SECRET.sub(value, text)
