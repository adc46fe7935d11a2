"""CloudWatch metric math for the AWS stand-in: moto answers every expression with no values and status
Complete (docs/research/ecs-on-moto.md §3), so GetMetricData calls with expressions are answered here.
The metric stats are asked of moto itself (with the stand-in's own credentials), then each expression is
evaluated as the GetMetricData reference describes arithmetic: `+ - * /` and parentheses over query ids and
numbers; two series combine at the timestamps both have, a series and a number at every point, a division
by zero leaves the point out; and `FILL(id, number)` (a series' missing points, at the timestamps any
other series has, set to the number — what an ALB's zero-only 5XX count needs). Other functions (SUM,
METRICS(), IF, …) are refused: this stand-in does not know them, and an empty answer must never read as
"no errors"."""

from __future__ import annotations

import ast
import operator
from datetime import UTC, datetime
from typing import Any

import boto3

from localcluster.awsrules import OBSERVER_KEY, Call

_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def unknown_in(expression: str, ids: set[str]) -> str:
    """Why `expression` is not arithmetic over `ids` ("" when it is)."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        return "not arithmetic"
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in ids | {"FILL"}:
            return f"unknown id {node.id}"
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id == "FILL"
                                               and len(node.args) == 2 and isinstance(node.args[1], ast.Constant)):
            return "only FILL(id, number) of the functions"
        if not isinstance(node, (ast.Expression, ast.BinOp, ast.UnaryOp, ast.USub, ast.Name, ast.Load, ast.Constant,
                                 ast.Call, *_OPERATORS)):
            return f"{type(node).__name__} is not supported by the stand-in (arithmetic only)"
    return ""


def answer(call: Call, url: str) -> dict[str, Any]:
    """GetMetricData's output for `call`: the stats from moto, the expressions evaluated."""
    p = call.params
    queries = p["MetricDataQueries"]
    stats = [{**q, "ReturnData": True} for q in queries if "MetricStat" in q]
    watch = boto3.client("cloudwatch", endpoint_url=url, region_name=call.region, aws_access_key_id=OBSERVER_KEY,
                         aws_secret_access_key="testing")
    series: dict[str, dict[float, float]] = {}
    if stats:
        got = watch.get_metric_data(MetricDataQueries=stats, StartTime=_time(p["StartTime"]), EndTime=_time(p["EndTime"]))
        for result in got["MetricDataResults"]:
            series[result["Id"]] = {t.timestamp(): v for t, v in zip(result["Timestamps"], result["Values"], strict=True)}
    results = []
    for query in queries:
        if "Expression" in query:
            series[query["Id"]] = _evaluate(ast.parse(query["Expression"], mode="eval").body, series)
        if query.get("ReturnData", True):
            points = sorted(series.get(query["Id"], {}).items(), reverse=p.get("ScanBy") != "TimestampAscending")
            results.append({"Id": query["Id"], "Label": query.get("Label", query["Id"]),
                            "Timestamps": [datetime.fromtimestamp(t, UTC) for t, _ in points],
                            "Values": [v for _, v in points], "StatusCode": "Complete"})
    return {"MetricDataResults": results, "Messages": []}


def _time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromtimestamp(float(value), UTC)




def _evaluate(node: ast.AST, series: dict[str, dict[float, float]]) -> Any:
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return series.get(node.id, {})
    if isinstance(node, ast.Call):  # FILL(id, number), checked by unknown_in
        filled = dict(_evaluate(node.args[0], series))
        everywhere = {t for points in series.values() for t in points}
        return {t: filled.get(t, float(node.args[1].value)) for t in everywhere}
    if isinstance(node, ast.UnaryOp):
        value = _evaluate(node.operand, series)
        return {t: -v for t, v in value.items()} if isinstance(value, dict) else -value
    assert isinstance(node, ast.BinOp)
    left, right, op = _evaluate(node.left, series), _evaluate(node.right, series), _OPERATORS[type(node.op)]
    if not isinstance(left, dict) and not isinstance(right, dict):
        return op(left, right)
    times = set(left) & set(right) if isinstance(left, dict) and isinstance(right, dict) else \
        set(left if isinstance(left, dict) else right)
    found = {}
    for t in times:
        a = left[t] if isinstance(left, dict) else left
        b = right[t] if isinstance(right, dict) else right
        if not (op is operator.truediv and b == 0):
            found[t] = op(a, b)
    return found
