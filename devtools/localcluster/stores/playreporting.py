"""The Play Developer Reporting API's part of the Play stand-in (`vitals.crashrate` / `vitals.anrrate`:
`get` with its `freshnessInfo`, `query` with its rules: DAILY timelines in America/Los_Angeles dates with
no time of day, ending no later than the freshness, metrics of the queried set only, rows paged with a
`pageToken` valid only for the same query)."""

from __future__ import annotations

import base64
import hashlib
import json
import re

from localcluster.stores.standin import Refusal, Reply

LA = "America/Los_Angeles"
METRICS = {  # the metrics each metric set offers (the discovery document's "Supported metrics")
    "crashRateMetricSet": {"crashRate", "crashRate7dUserWeighted", "crashRate28dUserWeighted", "userPerceivedCrashRate",
                           "userPerceivedCrashRate7dUserWeighted", "userPerceivedCrashRate28dUserWeighted",
                           "distinctUsers"},
    "anrRateMetricSet": {"anrRate", "anrRate7dUserWeighted", "anrRate28dUserWeighted", "userPerceivedAnrRate",
                         "userPerceivedAnrRate7dUserWeighted", "userPerceivedAnrRate28dUserWeighted", "distinctUsers"}}


class Reporting:
    """Mixed into the Play stand-in: `vitals` (package → versionCode → metric → value), `fresh_until`
    (package → the exclusive end of daily data, None: none yet), `page_rows` (rows a page)."""

    vitals: dict[str, dict[int, dict[str, float]]]
    fresh_until: dict[str, tuple[int, int, int] | None]
    page_rows: int

    def fresh(self, package: str) -> tuple[int, int, int] | None:
        """Where the package's daily data ends (exclusive): `fresh_until`, else today in Los Angeles (data
        through yesterday there); None (no data yet) when `fresh_until` maps it to None."""
        if package in self.fresh_until:
            return self.fresh_until[package]
        from datetime import datetime
        from zoneinfo import ZoneInfo

        today = datetime.now(ZoneInfo(LA)).date()
        return today.year, today.month, today.day

    def metric_set(self, package: str, metric_set: str) -> Reply:
        if metric_set not in METRICS:
            raise Refusal(501, f"{metric_set} is not implemented by the stand-in")
        freshnesses = []
        if self.fresh(package) is not None:
            year, month, day = self.fresh(package)
            freshnesses.append({"aggregationPeriod": "DAILY", "latestEndTime": {
                "year": year, "month": month, "day": day, "timeZone": {"id": LA}}})
        return Reply(200, {"name": f"apps/{package}/{metric_set}", "freshnessInfo": {"freshnesses": freshnesses}})

    def vitals_query(self, package: str, metric_set: str, body: dict) -> Reply:
        if metric_set not in METRICS:
            raise Refusal(501, f"{metric_set} is not implemented by the stand-in")
        foreign = [m for m in body.get("metrics", []) if m not in METRICS[metric_set]]
        if foreign:
            raise Refusal(400, f"Metrics {', '.join(foreign)} are not supported by {metric_set}.")
        spec = body.get("timelineSpec", {})
        start, end = spec.get("startTime", {}), spec.get("endTime", {})
        if spec.get("aggregationPeriod") == "DAILY":
            for point in (start, end):
                if (point.get("timeZone") or {}).get("id") != LA or any(point.get(k) for k in ("hours", "minutes",
                                                                                           "seconds", "nanos")):
                    raise Refusal(400, f"DAILY timelines are in {LA} dates with no time of day: {point}")
            fresh = self.fresh(package)
            if fresh is None or (end.get("year"), end.get("month"), end.get("day")) > fresh:
                raise Refusal(400, f"endTime {end} is later than the latest available daily data ({fresh}).")
        wanted = body.get("filter", "")
        codes = {int(c) for c in re.findall(r"versionCode\s*=\s*\"?(\d+)", wanted)}
        rows = []
        for code, values in sorted(self.vitals.get(package, {}).items()):
            if codes and code not in codes:
                continue
            rows.append({"aggregationPeriod": spec.get("aggregationPeriod", "DAILY"), "startTime": start,
                         "dimensions": [{"dimension": "versionCode", "int64Value": str(code)}],
                         "metrics": [{"metric": m, "decimalValue": {"value": repr(values[m])}}
                                     for m in body.get("metrics", []) if m in values]})
        query = json.dumps({k: v for k, v in body.items() if k != "pageToken"}, sort_keys=True)
        offset = 0
        if body.get("pageToken"):
            token = json.loads(base64.urlsafe_b64decode(body["pageToken"]))
            if token["query"] != hashlib.sha256(query.encode()).hexdigest():
                raise Refusal(400, "The page token does not match the request's other parameters.")
            offset = token["offset"]
        size = min(int(body.get("pageSize") or 1000), 10_000, self.page_rows)
        answer: dict = {"rows": rows[offset:offset + size]}
        if offset + size < len(rows):
            answer["nextPageToken"] = base64.urlsafe_b64encode(json.dumps({
                "query": hashlib.sha256(query.encode()).hexdigest(), "offset": offset + size}).encode()).decode()
        return Reply(200, answer)
