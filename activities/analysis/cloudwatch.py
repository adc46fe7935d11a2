"""CloudWatch providers, from the CloudWatch API reference: `cloudWatch` runs GetMetricData (metric stats
and metric math) over the last `lookback`, following NextToken, and answers `{id: [values, newest
first]}`; `cloudWatchAlarms` reads DescribeAlarms for the named alarms and answers their states (the
filters of DescribeAlarms do not combine, so the names are asked for and the states read here). The
region is the metric's; endpoint and credentials are the worker's (activities/aws.py). An unknown alarm
or a query CloudWatch rejects is bad input (non-retryable); throttling or an outage is an Error
measurement (retried by the analysis' own limits)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from temporalio.exceptions import ApplicationError

from activities.analysis import EmptyResult
from activities.aws import AwsClients, aws_errors
from models.analysis import LAMBDA, Metric, fill


def _window(config) -> tuple[datetime, datetime]:  # noqa: ANN001 - a CloudWatchProvider
    """The last `lookback`, its ends on period boundaries (as the GetMetricData reference recommends): the end
    rounded up, so the period under way is asked for whole (a minute's data arrives within it)."""
    periods = [q.metric_stat.period for q in config.metric_data_queries if q.metric_stat is not None] or [60]
    unit = 60 if all(p % 60 == 0 for p in periods) else min(periods)
    now = datetime.now(UTC).timestamp()
    end = math.ceil(now / unit) * unit
    start = math.floor((end - config.lookback.total_seconds()) / unit) * unit
    return datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)


class CloudWatchSource:
    def __init__(self, aws: AwsClients):
        self.aws = aws

    def measure(self, metric: Metric, args: dict[str, str]) -> tuple[Any, str]:
        if metric.provider.cloud_watch_alarms is not None:
            return self._alarms(metric, args)
        config = metric.provider.cloud_watch
        start, end = _window(config)
        queries = [self._query(q, args) for q in config.metric_data_queries]
        shown = ", ".join(q["Id"] + "=" + (q.get("Expression") or q["MetricStat"]["Metric"]["MetricName"]) for q in queries)
        found: dict[str, list[float]] = {}
        request: dict[str, Any] = {"MetricDataQueries": queries, "StartTime": start, "EndTime": end,
                                   "ScanBy": "TimestampDescending"}
        with aws_errors(f"metric {metric.name}: CloudWatch {config.region}", "Invalid"):
            client = self.aws.cloudwatch(config.region)
            while True:
                answer = client.get_metric_data(**request)
                for result in answer.get("MetricDataResults", []):
                    found.setdefault(result["Id"], []).extend(float(v) for v in result.get("Values", []))
                if not answer.get("NextToken"):
                    break
                request["NextToken"] = answer["NextToken"]
        found = {key: values for key, values in found.items() if values}
        if not found:
            raise EmptyResult("no data points in the lookback", shown)
        return found, shown

    @staticmethod
    def _query(query, args: dict[str, str]) -> dict[str, Any]:  # noqa: ANN001 - a CloudWatchQuery
        made: dict[str, Any] = {"Id": query.id, "ReturnData": query.return_data}
        if query.label:
            made["Label"] = fill(query.label, args)
        if query.expression is not None:
            made["Expression"] = fill(query.expression, args)
            if LAMBDA.search(made["Expression"]):  # an arg must not bring in what validation refuses
                raise ApplicationError(f"query {query.id}: no LAMBDA() (from an arg)", type="Invalid", non_retryable=True)
            return made
        stat = query.metric_stat
        made["MetricStat"] = {
            "Metric": {"Namespace": stat.metric.namespace, "MetricName": stat.metric.metric_name,
                       "Dimensions": [{"Name": d.name, "Value": fill(d.value, args)} for d in stat.metric.dimensions]},
            "Period": stat.period, "Stat": stat.stat, **({"Unit": stat.unit} if stat.unit else {})}
        return made

    def _alarms(self, metric: Metric, args: dict[str, str]) -> tuple[Any, str]:
        config = metric.provider.cloud_watch_alarms
        names = [fill(name, args) for name in config.alarm_names]
        states: dict[str, str] = {}
        with aws_errors(f"metric {metric.name}: CloudWatch {config.region}", "Invalid"):
            pages = self.aws.cloudwatch(config.region).get_paginator("describe_alarms").paginate(
                AlarmNames=names, AlarmTypes=["MetricAlarm", "CompositeAlarm"])
            for page in pages:
                for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                    states[alarm["AlarmName"]] = alarm["StateValue"]
        missing = [name for name in names if name not in states]
        if missing:
            raise ApplicationError(f"metric {metric.name}: no CloudWatch alarm {missing[0]!r} in {config.region}",
                                   type="Invalid", non_retryable=True)
        states = {name: states[name] for name in names}
        return {"alarms": states, "inAlarm": [n for n, s in states.items() if s == "ALARM"]}, f"alarms {', '.join(names)}"
