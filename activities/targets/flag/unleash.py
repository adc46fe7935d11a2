"""A flag in Unleash, through its admin API: the feature's `flexibleRollout` strategy in one
environment, whose `rollout` parameter (whole percents) is the share; `stickiness` and `groupId` are
kept as they are (set to `default` and the flag's name when the strategy is created), so a larger
share only adds users. The admin token is read here, from `$DURABLE_ROLLOUTS_UNLEASH_TOKEN`."""

from __future__ import annotations

import os
from typing import Any

import httpx
from temporalio.exceptions import ApplicationError

from models.flags import FlagChannel, FlagState

TOKEN_VARIABLE = "DURABLE_ROLLOUTS_UNLEASH_TOKEN"
STRATEGY = "flexibleRollout"


class UnleashStore:
    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def _call(self, channel: FlagChannel, method: str, path: str, body: dict | None = None) -> Any:
        u = channel.unleash
        token = os.environ.get(TOKEN_VARIABLE)
        if not token:
            raise ApplicationError(f"${TOKEN_VARIABLE} is not set (the Unleash admin token)", type="Invalid",
                                   non_retryable=True)
        url = f"{u.url.rstrip('/')}/api/admin/projects/{u.project}/features/{channel.flag}{path}"
        try:
            answer = self.http.request(method, url, json=body, headers={"Authorization": token}, timeout=15)
        except httpx.HTTPError as error:
            raise ApplicationError(f"Unleash {u.url}: {type(error).__name__}", type="FlagStoreUnavailable") from None
        if answer.status_code in (401, 403, 404):
            what = {401: "Unauthorized", 403: "Forbidden", 404: f"no feature {channel.flag} in {u.project}"}
            raise ApplicationError(f"Unleash {method} {url}: {what[answer.status_code]}", type="InvalidTarget",
                                   non_retryable=True)
        if answer.status_code >= 400:
            raise ApplicationError(f"Unleash {method} {url}: HTTP {answer.status_code}", type="FlagStoreUnavailable")
        return answer.json() if answer.content else None

    def _strategy(self, channel: FlagChannel) -> dict | None:
        feature = self._call(channel, "GET", "")
        for environment in feature.get("environments", []):
            if environment.get("name") == channel.unleash.environment:
                return next((s for s in environment.get("strategies", []) if s.get("name") == STRATEGY), None)
        raise ApplicationError(f"Unleash feature {channel.flag} has no environment {channel.unleash.environment}",
                               type="InvalidTarget", non_retryable=True)

    def read(self, channel: FlagChannel, variant: str) -> FlagState:
        strategy = self._strategy(channel)
        percent = int((strategy or {}).get("parameters", {}).get("rollout", "0"))
        return FlagState(variant=variant, basis_points=percent * 100, revision=str((strategy or {}).get("id", "")))

    def write(self, channel: FlagChannel, variant: str, basis_points: int) -> FlagState:
        if basis_points % 100:
            raise ApplicationError(f"Unleash rolls out whole percents, not {basis_points / 100:g}%", type="Invalid",
                                   non_retryable=True)
        rollout = str(basis_points // 100)
        strategy = self._strategy(channel)
        where = f"/environments/{channel.unleash.environment}/strategies"
        if strategy is None:
            body = {"name": STRATEGY, "constraints": [],
                    "parameters": {"rollout": rollout, "stickiness": "default", "groupId": channel.flag}}
            strategy = self._call(channel, "POST", where, body)
        elif strategy.get("parameters", {}).get("rollout") != rollout:
            body = {"name": STRATEGY, "constraints": strategy.get("constraints", []),
                    "parameters": {**strategy.get("parameters", {}), "rollout": rollout}}
            strategy = self._call(channel, "PUT", f"{where}/{strategy['id']}", body)
        return FlagState(variant=variant, basis_points=basis_points, revision=str(strategy.get("id", "")))
