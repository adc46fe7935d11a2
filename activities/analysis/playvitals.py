"""Play vitals provider: the crash or ANR rate of the release's version code beside a baseline, from
the Play Developer Reporting API (`vitals.crashrate` / `vitals.anrrate` `query`), daily rows by
`versionCode` weighted by their distinct users. Signs in as the Play channel does (the service-account
key in `$DURABLE_ROLLOUTS_PLAY_CREDENTIALS`, scope playdeveloperreporting)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from activities.analysis import EmptyResult
from activities.targets.play.auth import REPORTING_SCOPE, GoogleTokens
from activities.targets.storeapi import StoreApi, UsesStore
from models.analysis import Metric, fill

API_ENV = "DURABLE_ROLLOUTS_PLAY_REPORTING_API"
METRIC_SETS = {"crashRate": "crashRateMetricSet", "userPerceivedCrashRate": "crashRateMetricSet",
               "anrRate": "anrRateMetricSet", "userPerceivedAnrRate": "anrRateMetricSet"}


def _day(when: datetime) -> dict[str, Any]:
    return {"year": when.year, "month": when.month, "day": when.day, "timeZone": {"id": "America/Los_Angeles"}}


class PlayVitalsSource(UsesStore):
    def build_api(self) -> StoreApi:
        return StoreApi("Play Developer Reporting", os.environ.get(API_ENV, "https://playdeveloperreporting.googleapis.com/"),
                        GoogleTokens(REPORTING_SCOPE, "Play Developer Reporting"))

    def measure(self, metric: Metric, args: dict[str, str]) -> tuple[Any, str]:
        v = metric.provider.play_vitals
        code = fill(v.version_code, args)
        baseline = fill(v.baseline_version_code, args) if v.baseline_version_code else None
        metric_set = METRIC_SETS[v.metric]
        today = datetime.now(UTC)
        body = {"timelineSpec": {"aggregationPeriod": "DAILY", "startTime": _day(today - timedelta(days=v.days)),
                                 "endTime": _day(today)},
                "dimensions": ["versionCode"], "metrics": [v.metric, "distinctUsers"]}
        path = f"v1beta1/apps/{v.package_name}/{metric_set}:query"
        rows = self.api.json("POST", path, f"{metric_set} query", json=body).get("rows", [])
        totals: dict[str, list[float]] = {}  # version code -> [rate × users, users]
        for row in rows:
            dims = {d.get("dimension"): d.get("int64Value") or d.get("stringValue") for d in row.get("dimensions", [])}
            values = {m.get("metric"): float((m.get("decimalValue") or {}).get("value", "nan"))
                      for m in row.get("metrics", [])}
            if v.metric not in values or values[v.metric] != values[v.metric]:
                continue
            users = values.get("distinctUsers") or 1.0
            total = totals.setdefault(str(dims.get("versionCode")), [0.0, 0.0])
            total[0] += values[v.metric] * users
            total[1] += users
        shown = f"{v.metric} of {v.package_name} version code {code} vs {baseline or 'the others'} ({v.days}d)"
        if code not in totals:
            raise EmptyResult(f"Play reports no {v.metric} for version code {code} yet", shown)
        others = [t for c, t in totals.items() if (c == baseline if baseline else c != code)]
        if not others:
            raise EmptyResult(f"Play reports no {v.metric} for the baseline {baseline or '(other versions)'}", shown)
        rate = totals[code][0] / totals[code][1]
        base = sum(t[0] for t in others) / sum(t[1] for t in others)
        return {"release": round(rate, 6), "baseline": round(base, 6)}, shown
