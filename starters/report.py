"""`rollout report ID [--png FILE] [--html FILE]`: what a rollout did over time, drawn from its status and
its Temporal history (every run of it, decoded with the CLI's data converter, payload codec included).

The picture (matplotlib): the new version's traffic share step by step (or, for a strategy without a
weight, the step it was at), the pauses and approval waits shaded, each decision marked with who made
it; below, every analysis measurement against the thresholds its conditions name. The HTML page
embeds the picture and adds the tables: steps, decisions, measurements, the verdict."""

from __future__ import annotations

import base64
import html
import io
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from models.analysis import MeasureInput, Measurement
from models.status import RolloutStatus
from starters.exitcodes import ExitCode, UserError

THRESHOLD = re.compile(r"result\[0\]\s*(<=|<|>=|>)\s*(-?[0-9.]+(?:[eE][-+]?[0-9]+)?)")
WAITS = ("pause", "approval", "analysis")


@dataclass
class Point:
    at: datetime
    value: float | None
    phase: str


@dataclass
class Series:
    """One analysis metric's measurements and the thresholds its conditions name."""

    name: str
    points: list[Point] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)  # "success <= 0.01", ...


@dataclass
class Report:
    status: RolloutStatus
    exposure: list[tuple[datetime, float]]
    exposure_label: str
    waits: list[tuple[datetime, datetime, str]]
    series: dict[str, Series]


def _first_value(text: str) -> float | None:
    try:
        value = json.loads(text)
    except (ValueError, TypeError):
        return None
    while isinstance(value, list) and value:
        value = value[0]
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


async def measurements(client: Client, handle) -> dict[str, Series]:
    """Every `measure` activity of every run, with its time and result, by template/metric."""
    series: dict[str, Series] = {}
    latest = await handle.fetch_history()
    started = latest.events[0].workflow_execution_started_event_attributes
    run_id = started.first_execution_run_id or latest.run_id
    converter = client.data_converter
    while run_id:
        history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        inputs: dict[int, MeasureInput] = {}
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                a = event.activity_task_scheduled_event_attributes
                if a.activity_type.name == "measure":
                    [inputs[event.event_id]] = await converter.decode(a.input.payloads, [MeasureInput])
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                a = event.activity_task_completed_event_attributes
                request = inputs.get(a.scheduled_event_id)
                if request is None:
                    continue
                [m] = await converter.decode(a.result.payloads, [Measurement])
                key = f"{request.template}/{request.metric.name}"
                s = series.setdefault(key, Series(key, thresholds=_thresholds(request)))
                s.points.append(Point(event.event_time.ToDatetime().replace(tzinfo=None), _first_value(m.value), m.phase))
        last = history.events[-1]
        run_id = (last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
                  if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW else "")
    return series


def _thresholds(request: MeasureInput) -> dict[str, float]:
    found = {}
    for kind, condition in (("success", request.metric.success_condition), ("failure", request.metric.failure_condition)):
        match = THRESHOLD.search(condition or "")
        if match:
            found[f"{kind} {match.group(1)} {match.group(2)}"] = float(match.group(2))
    return found


def timeline(status: RolloutStatus, series: dict[str, Series]) -> Report:
    """The exposure steps, the waits and the measurements, on the status's clock (UTC, naive)."""
    naive = [(h.at.replace(tzinfo=None), h) for h in status.history]
    weights = [(at, float(h.detail.split("%")[0])) for at, h in naive
               if h.event == "weight-set" and h.detail.split("%")[0].isdigit()]
    starts = [(at, h) for at, h in naive if h.event == "step-started"]
    end = (status.finished_at or max((at for at, _ in naive), default=None) or datetime.now()).replace(tzinfo=None)
    waits = []
    for i, (at, h) in enumerate(starts):
        kind = h.detail.split(" ")[0]
        if kind in WAITS:
            until = starts[i + 1][0] if i + 1 < len(starts) else end
            waits.append((at, until, h.detail))
    if weights:
        exposure, label = [*weights, (end, weights[-1][1])], "traffic to the new version (%)"
    else:
        exposure = [(at, float((h.step or 0) + 1)) for at, h in starts] + [(end, float(status.current_step))]
        label = "step"
    return Report(status, exposure, label, waits, series)


def figure(report: Report):
    """The matplotlib Figure (Agg): axes[0] the exposure, axes[1] (if any) the measurements."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    s = report.status
    rows = 2 if report.series else 1
    fig = Figure(figsize=(11, 3.6 * rows), layout="constrained")
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    top = axes[0]
    times, values = zip(*report.exposure, strict=True) if report.exposure else ((), ())
    top.step(times, values, where="post", label=report.exposure_label, color="tab:blue", linewidth=2)
    top.set_ylim(0, max(values, default=1) * 1.08)
    for start, end, what in report.waits:
        top.axvspan(start, end, alpha=0.15, color="tab:orange" if what.startswith("approval") else "tab:gray",
                    label=f"waiting: {what}")
    for d in s.decisions:
        at = d.at.replace(tzinfo=None)
        top.axvline(at, color="tab:green" if d.accepted else "tab:red", linestyle="--", linewidth=1)
        top.annotate(f"{d.kind} by {d.by}", (at, top.get_ylim()[1]), rotation=90, fontsize=8, va="top", ha="right")
    top.set_ylabel(report.exposure_label)
    top.set_title(f"{s.rollout_id} · {s.image} · {s.phase.value}{' (' + s.reason + ')' if s.reason else ''}")
    top.legend(loc="upper left", fontsize=8)
    if report.series:
        bottom = axes[1]
        for name, series in report.series.items():
            points = [p for p in series.points if p.value is not None]
            line, = bottom.plot([p.at for p in points], [p.value for p in points], marker="o", label=name)
            for label, value in series.thresholds.items():
                bottom.axhline(value, color=line.get_color(), linestyle=":", label=f"{name} {label}")
            failed = [p for p in points if p.phase != "Successful"]
            if failed:
                bottom.scatter([p.at for p in failed], [p.value for p in failed], color="tab:red", zorder=3,
                               label=f"{name} not successful")
        bottom.set_ylabel("measured value")
        bottom.legend(loc="upper left", fontsize=8)
    axes[-1].set_xlabel("time (UTC)")
    return fig


def png(report: Report) -> bytes:
    buffer = io.BytesIO()
    figure(report).savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def page(report: Report, picture: bytes) -> str:
    s, e = report.status, html.escape
    rows = lambda cells: "".join(f"<tr>{''.join(f'<td>{e(str(c))}</td>' for c in row)}</tr>" for row in cells)  # noqa: E731
    steps = [(i + 1, d) for i, d in enumerate(s.steps)]
    decisions = [(f"{d.at:%Y-%m-%d %H:%M:%S}", d.kind, d.by, d.source, "accepted" if d.accepted else f"refused: {d.why}",
                  d.detail, d.comment) for d in s.decisions]
    measured = [(f"{p.at:%H:%M:%S}", name, "" if p.value is None else p.value, p.phase)
                for name, series in report.series.items() for p in series.points]
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{e(s.rollout_id)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:2px 8px}}</style></head><body>
<h1>{e(s.rollout_id)}</h1>
<p id="verdict">{e(s.phase.value)}{e(' (' + s.reason + ')' if s.reason else '')}: {e(s.message)} — {e(s.image)}
started by {e(s.started_by)} at {s.started_at or ''}, finished {s.finished_at or 'not yet'}</p>
<img alt="what {e(s.rollout_id)} did over time" src="data:image/png;base64,{base64.b64encode(picture).decode()}">
<h2>Steps</h2><table id="steps"><tr><th>#</th><th>step</th></tr>{rows(steps)}</table>
<h2>Decisions</h2><table id="decisions"><tr><th>at</th><th>decision</th><th>by</th><th>source</th><th>outcome</th>
<th>detail</th><th>comment</th></tr>{rows(decisions)}</table>
<h2>Measurements</h2><table id="measurements"><tr><th>at</th><th>metric</th><th>value</th><th>phase</th></tr>
{rows(measured)}</table></body></html>
"""


async def build(rollout_id: str) -> Report:
    from starters.commands import get_status

    handle, status = await get_status(rollout_id)
    from workers.temporal import TemporalSettings, connect

    client = await connect(TemporalSettings.from_env())
    return timeline(status, await measurements(client, client.get_workflow_handle(handle.id)))


async def report(rollout_id: str, png_file: str | None, html_file: str | None) -> int:
    if not (png_file or html_file):
        raise UserError("report: say where to write it (--png FILE and/or --html FILE)", ExitCode.INVALID)
    built = await build(rollout_id)
    picture = png(built)
    for target, content in ((png_file, picture), (html_file, page(built, picture).encode())):
        if target:
            try:
                Path(target).write_bytes(content)
            except OSError as error:
                raise UserError(f"report: cannot write {target}: {error.strerror}", ExitCode.INVALID) from None
            print(f"report: {target}")
    return ExitCode.OK
