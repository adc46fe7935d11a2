"""Play vitals provider: the crash or ANR rate of the release's version code beside a baseline, from
the Play Developer Reporting API (`vitals.crashrate` / `vitals.anrrate` `query`), daily rows by
`versionCode` weighted by their distinct users. DAILY data is in America/Los_Angeles calendar days (the
API's only time zone for it), and ends where the metric set's `freshnessInfo` says the latest daily data
ends: the window is the `days` before that end, never days Play has not computed yet; every page of rows
is read (`nextPageToken`). Signs in as the Play channel does (the service-account key in
`$DURABLE_ROLLOUTS_PLAY_CREDENTIALS`, scope playdeveloperreporting)."""

from __future__ import annotations

import os
from datetime import date, timedelta
from typing import Any

from activities.analysis import EmptyResult
from activities.targets.play.auth import REPORTING_SCOPE, GoogleTokens
from activities.targets.storeapi import StoreApi, UsesStore
from models.analysis import Metric, fill

API_ENV = "DURABLE_ROLLOUTS_PLAY_REPORTING_API"
LA = "America/Los_Angeles"
MAX_PAGES = 50
METRIC_SETS = {"crashRate": "crashRateMetricSet", "userPerceivedCrashRate": "crashRateMetricSet",
               "anrRate": "anrRateMetricSet", "userPerceivedAnrRate": "anrRateMetricSet"}


def _day(when: date) -> dict[str, Any]:
    return {"year": when.year, "month": when.month, "day": when.day, "timeZone": {"id": LA}}


def latest_daily_end(metric_set: dict[str, Any]) -> date | None:
    """The (exclusive) end of the latest DAILY data, a Los Angeles date; None when Play has none."""
    for freshness in (metric_set.get("freshnessInfo") or {}).get("freshnesses") or []:
        end = freshness.get("latestEndTime") or {}
        if freshness.get("aggregationPeriod") == "DAILY" and end.get("year"):
            zone = (end.get("timeZone") or {}).get("id", LA)
            if zone != LA:
                raise EmptyResult(f"Play's daily data ends in time zone {zone}, not {LA}", "freshnessInfo")
            return date(int(end["year"]), int(end["month"]), int(end["day"]))
    return None


class PlayVitalsSource(UsesStore):
    def build_api(self) -> StoreApi:
        return StoreApi("Play Developer Reporting", os.environ.get(API_ENV, "https://playdeveloperreporting.googleapis.com/"),
                        GoogleTokens(REPORTING_SCOPE, "Play Developer Reporting"))

    def measure(self, metric: Metric, args: dict[str, str]) -> tuple[Any, str]:
        v = metric.provider.play_vitals
        code = fill(v.version_code, args)
        baseline = fill(v.baseline_version_code, args) if v.baseline_version_code else None
        metric_set = METRIC_SETS[v.metric]
        path = f"v1beta1/apps/{v.package_name}/{metric_set}"
        end = latest_daily_end(self.api.json("GET", path, f"{metric_set} freshness"))
        if end is None:
            raise EmptyResult(f"Play has no daily {v.metric} data for {v.package_name} yet", path)
        body: dict[str, Any] = {
            "timelineSpec": {"aggregationPeriod": "DAILY", "startTime": _day(end - timedelta(days=v.days)),
                             "endTime": _day(end)},
            "dimensions": ["versionCode"], "metrics": [v.metric, "distinctUsers"], "pageSize": 10_000}
        rows: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            answer = self.api.json("POST", f"{path}:query", f"{metric_set} query", json=body)
            rows += answer.get("rows", [])
            if not answer.get("nextPageToken"):
                break
            body = {**body, "pageToken": answer["nextPageToken"]}
        else:
            raise EmptyResult(f"more than {MAX_PAGES} pages of {v.metric} rows", path)
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
        shown = (f"{v.metric} of {v.package_name} version code {code} vs {baseline or 'the others'} "
                 f"({v.days}d to {end - timedelta(days=1)}, Los Angeles days)")
        if code not in totals:
            raise EmptyResult(f"Play reports no {v.metric} for version code {code} yet", shown)
        others = [t for c, t in totals.items() if (c == baseline if baseline else c != code)]
        if not others:
            raise EmptyResult(f"Play reports no {v.metric} for the baseline {baseline or '(other versions)'}", shown)
        rate = totals[code][0] / totals[code][1]
        base = sum(t[0] for t in others) / sum(t[1] for t in others)
        return {"release": round(rate, 6), "baseline": round(base, 6)}, shown
