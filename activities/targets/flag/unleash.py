"""A flag in Unleash, through its admin API: one `flexibleRollout` strategy of the feature in one
environment — the one `unleash.strategy` names (id or title), or the only one there — whose `rollout`
parameter (whole percents) is the share. A change is a JSON patch of that one parameter
(`PATCH .../strategies/{id}`, `[{"op": "replace", "path": "/parameters/rollout", ...}]`): the
strategy's variants, constraints, segments, `stickiness` and `groupId` stay as they are (a PUT would
have to send them all back: Unleash stores what a PUT leaves out as none), so a larger share only adds
users. A strategy is created (`stickiness: default`, `groupId`: the flag) only when the environment has
no flexibleRollout. A disabled environment, or a `disabled: true` strategy (Unleash does not serve it
to SDKs), serves nobody: its share reads 0, raising it is refused, naming why (lowering it, a
rollback, is written). The admin token is read here, from `$DURABLE_ROLLOUTS_UNLEASH_TOKEN`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import httpx
from temporalio.exceptions import ApplicationError

from models.flags import FlagChannel, FlagState

TOKEN_VARIABLE = "DURABLE_ROLLOUTS_UNLEASH_TOKEN"
STRATEGY = "flexibleRollout"


class UnleashStore:
    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def _call(self, channel: FlagChannel, method: str, path: str, body: dict | list | None = None) -> Any:
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

    def _refuse(self, channel: FlagChannel, why: str) -> ApplicationError:
        return ApplicationError(f"Unleash feature {channel.flag} in {channel.unleash.environment}: {why}",
                                type="InvalidTarget", non_retryable=True)

    def _environment(self, channel: FlagChannel) -> dict:
        feature = self._call(channel, "GET", "")
        environment = next((e for e in feature.get("environments", []) if e.get("name") == channel.unleash.environment),
                           None)
        if environment is None:
            raise self._refuse(channel, "no such environment")
        return environment

    def _strategy(self, channel: FlagChannel, environment: dict) -> dict | None:
        """The strategy the channel ramps (None: the environment has no flexibleRollout yet)."""
        named = channel.unleash.strategy
        rollouts = [s for s in environment.get("strategies", []) if s.get("name") == STRATEGY]
        if named is not None:
            found = [s for s in rollouts if named in (s.get("id"), s.get("title"))]
            if len(found) != 1:
                raise self._refuse(channel, f"{len(found)} {STRATEGY} strategies with id or title {named!r}, not one")
            return found[0]
        if len(rollouts) > 1:
            raise self._refuse(channel, f"{len(rollouts)} {STRATEGY} strategies: name the one to ramp in "
                                        "unleash.strategy (its id or title)")
        return rollouts[0] if rollouts else None

    def _percent(self, channel: FlagChannel, strategy: dict | None) -> int:
        rollout = (strategy or {}).get("parameters", {}).get("rollout", "0")
        if not (isinstance(rollout, str) and rollout.isascii() and rollout.isdigit() and int(rollout) <= 100):
            raise self._refuse(channel, f"strategy {(strategy or {}).get('title') or (strategy or {}).get('id')}'s "
                                        f"rollout {rollout!r} is not a whole percent 0-100")
        return int(rollout)

    def _check(self, channel: FlagChannel, off: str, percent: int, basis_points: int) -> None:
        """Refuses a share this store cannot write (`off`: why nobody is served the strategy, or "")."""
        if basis_points % 100:
            raise ApplicationError(f"Unleash rolls out whole percents, not {basis_points / 100:g}%", type="Invalid",
                                   non_retryable=True)
        if off and basis_points > percent * 100:
            raise self._refuse(channel, f"{off} (nobody gets the flag): enable it before releasing")

    def _where(self, channel: FlagChannel) -> tuple[str, dict | None]:
        """(why SDKs are not served the strategy ramped — a disabled environment or strategy — or "";
        that strategy)."""
        environment = self._environment(channel)
        strategy = self._strategy(channel, environment)
        if not environment.get("enabled", False):
            return "the environment is disabled", strategy
        return ("the strategy is disabled" if (strategy or {}).get("disabled") else ""), strategy

    def read(self, channel: FlagChannel, variant: str, plan: Sequence[int] = ()) -> FlagState:
        off, strategy = self._where(channel)
        for basis_points in plan:
            self._check(channel, off, self._percent(channel, strategy), basis_points)
        percent = 0 if off else self._percent(channel, strategy)
        return FlagState(variant=variant, basis_points=percent * 100, revision=str((strategy or {}).get("id", "")))

    def write(self, channel: FlagChannel, variant: str, basis_points: int,
              restore: list[list[Any]] | None = None) -> FlagState:
        off, strategy = self._where(channel)
        self._check(channel, off, self._percent(channel, strategy), basis_points)
        rollout = str(basis_points // 100)
        where = f"/environments/{channel.unleash.environment}/strategies"
        if strategy is None:
            body = {"name": STRATEGY, "constraints": [],
                    "parameters": {"rollout": rollout, "stickiness": "default", "groupId": channel.flag}}
            strategy = self._call(channel, "POST", where, body)
        elif strategy.get("parameters", {}).get("rollout") != rollout:
            patch = [{"op": "replace" if "rollout" in strategy.get("parameters", {}) else "add",
                      "path": "/parameters/rollout", "value": rollout}]
            strategy = self._call(channel, "PATCH", f"{where}/{strategy['id']}", patch)
        return FlagState(variant=variant, basis_points=basis_points, revision=str(strategy.get("id", "")))
