"""Running analysis inside a rollout workflow: each metric of each template concurrently; every
measurement is an activity, every interval a durable timer, the counts live in the workflow — a crash
between measurements loses nothing and counts nothing twice. Argo's semantics: `initialDelay`,
`count`, `interval`, `failureLimit`, `inconclusiveLimit`, `consecutiveErrorLimit` (then Inconclusive:
errors never pass), `consecutiveSuccessLimit`, `dryRun` (recorded, never decides),
`measurementRetention`. An abort ends the analysis at once."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.analysis import AnalysisActivities
    from models.analysis import (
        AnalysisResult,
        AnalysisStep,
        AnalysisTemplate,
        MeasureInput,
        Metric,
        MetricResult,
    )
    from models.presets import resolve
    from models.status import Reason
    from workflows import metrics
    from workflows.context import Control
    from workflows.control import failure_reason
    from workflows.errors import AnalysisFailed, RolloutAborted

MEASURE = {  # a provider call is bounded (web timeoutSeconds <= 60, Prometheus 10 s per request)
    "start_to_close_timeout": timedelta(minutes=2),
    "heartbeat_timeout": timedelta(seconds=10),
    "retry_policy": RetryPolicy(maximum_attempts=3, non_retryable_error_types=["Invalid"]),
}


async def gate(control: Control, index: int, step: AnalysisStep) -> None:
    """An analysis gate at `index`: Successful goes on; Failed raises AnalysisFailed (the strategy rolls
    back); Inconclusive pauses for a person (promote goes on, abort rolls back)."""
    names = ", ".join(t.template_name for t in step.templates)
    control.start_step(index, f"analysis {names}")
    result = await AnalysisRunner(control).run(await arguments(control, step))
    control.record(f"analysis-{result.phase.lower()}", result.message or names)
    metrics.analysed(result.phase)
    if result.phase == "Failed":
        control.announce("analysis-failed", "critical", f"step {index + 1}: {names} failed: {result.message}")
        raise AnalysisFailed(f"analysis {names} failed: {result.message}")
    if result.phase == "Inconclusive":
        await control.pause(index, None, reason=Reason.ANALYSIS_INCONCLUSIVE,
                            what=f"analysis inconclusive: {result.message}: promote to go on, abort to roll back")


async def arguments(control: Control, step: AnalysisStep) -> list[tuple[AnalysisTemplate, dict[str, str]]]:
    """The step's templates with their args, a valueFrom.podTemplateHashValue arg read now from the strategy's
    pods; AnalysisFailed (the strategy rolls back) when they cannot be read: the analysis would measure
    pods it cannot name."""
    hashes = {}
    for role in step.hash_roles():  # none in runs recorded before valueFrom: no command added to them
        if control.template_hash is not None:
            try:
                hashes[role] = await control.template_hash(role)
            except ActivityError as error:
                raise AnalysisFailed(f"valueFrom.podTemplateHashValue {role}: {failure_reason(error)[1]}") from None
    try:
        return resolve(control.rollout.spec.analysis.templates, step, hashes)
    except ValueError as error:
        raise AnalysisFailed(f"analysis args: {error}") from None


class AnalysisRunner:
    def __init__(self, control: Control, background: bool = False):
        self.control, self.background = control, background

    async def run(self, resolved: list[tuple[AnalysisTemplate, dict[str, str]]],
                  previous: list[MetricResult] | None = None) -> AnalysisResult:
        """`previous`: the counts of the same analysis in an earlier run of this rollout, to go on from."""
        earlier = {(r.template, r.name): r for r in previous or [] if r.phase == "Running"}
        results = [earlier.get((t.name, m.name)) or MetricResult(template=t.name, name=m.name, dry_run=m.dry_run)
                   for t, _ in resolved for m in t.metrics]
        self.control.status.analysis = results
        runs = []
        index = 0
        for template, args in resolved:
            for metric in template.metrics:
                runs.append(self._metric(template.name, metric, args, results[index]))
                index += 1
        skipped = await self._run_all(runs)
        if skipped:
            return AnalysisResult(phase="Successful", metrics=results, message=skipped)
        deciding = [r for r in results if not r.dry_run]
        failed = [r for r in deciding if r.phase == "Failed"]
        unsure = [r for r in deciding if r.phase == "Inconclusive"]
        phase = "Failed" if failed else "Inconclusive" if unsure else "Successful"
        message = "; ".join(f"{r.template}/{r.name} {r.phase}: {r.message}" for r in failed or unsure)
        return AnalysisResult(phase=phase, metrics=results, message=message)

    async def _run_all(self, runs: list) -> str:
        """Run the metrics together until all are done (an error is raised as soon as one fails), or
        until someone skips the analysis (`rollout skip-analysis`): then the metrics are cancelled and
        the reason is returned."""
        control = self.control
        tasks = [asyncio.create_task(run) for run in runs]
        failed = lambda t: t.done() and not t.cancelled() and t.exception() is not None  # noqa: E731
        control.pending.analysis_running += 1
        try:
            await workflow.wait_condition(
                lambda: all(t.done() for t in tasks) or any(failed(t) for t in tasks) or control.pending.skip is not None)
        except asyncio.CancelledError:  # the analysis itself was stopped (background analysis at the end)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            control.pending.analysis_running -= 1
        for task in tasks:
            if failed(task):
                raise task.exception()
        if all(t.done() for t in tasks):
            return ""
        skip = control.pending.take_skip()
        assert skip is not None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return f"skipped by {skip.by}{': ' + skip.comment if skip.comment else ''}"

    async def _metric(self, template: str, metric: Metric, args: dict[str, str], r: MetricResult) -> None:
        taken = r.successful + r.failed + r.inconclusive + r.errors  # > 0 when going on from an earlier run
        if metric.initial_delay and not taken:
            await self.control.sleep_unless_aborted(metric.initial_delay, "analysis interval")
        elif taken and metric.interval:
            await self.control.sleep_unless_aborted(metric.interval, "analysis interval")
        request = MeasureInput(rollout_id=self.control.status.rollout_id, template=template, metric=metric, args=args)
        unbounded = self.background and metric.count is None and metric.interval is not None
        for number in itertools.count(taken) if unbounded else range(taken, metric.measurements):
            handle = workflow.start_activity_method(
                AnalysisActivities.measure, request, summary=f"measure {template}/{metric.name}", **MEASURE
            )
            m = await self.control.run_interruptible(handle)
            r.measurements = (r.measurements + [m])[-metric.measurement_retention:]
            metrics.measured(template, metric.name, m.phase)
            if m.phase == "Error":
                r.errors += 1
                r.consecutive_errors += 1
                r.consecutive_successes = 0
            else:
                r.consecutive_errors = 0
                setattr(r, m.phase.lower(), getattr(r, m.phase.lower()) + 1)
                r.consecutive_successes = r.consecutive_successes + 1 if m.phase == "Successful" else 0
            shown = f"{m.query or '?'} = {m.value or m.message}"
            if r.failed > metric.failure_limit:
                r.phase, r.message = "Failed", f"{r.failed} failed (limit {metric.failure_limit}): {shown}"
            elif r.inconclusive > metric.inconclusive_limit:
                r.phase, r.message = "Inconclusive", f"{r.inconclusive} inconclusive (limit {metric.inconclusive_limit}): {shown}"
            elif r.consecutive_errors > metric.consecutive_error_limit:
                r.phase, r.message = "Inconclusive", (f"{r.consecutive_errors} errors in a row (limit "
                                                      f"{metric.consecutive_error_limit}): {m.message}")
            elif metric.consecutive_success_limit and r.consecutive_successes >= metric.consecutive_success_limit:
                r.phase, r.message = "Successful", f"{r.consecutive_successes} successes in a row: {shown}"
            if r.phase != "Running":
                return
            if (unbounded or number < metric.measurements - 1) and metric.interval:
                await self.control.sleep_unless_aborted(metric.interval, "analysis interval")
        if r.successful == 0:
            r.phase, r.message = "Inconclusive", f"no successful measurement ({r.errors} errors)"
        else:
            r.phase, r.message = "Successful", f"{r.successful}/{metric.measurements} successful"


class BackgroundRun:
    """A canary's background analysis: a task beside the steps. Failed requests the abort (the rollout
    rolls back with reason AnalysisFailed); Inconclusive makes the next step boundary pause for a person."""

    def __init__(self, control: Control, step: AnalysisStep, previous: list[MetricResult] | None = None):
        self.control, self.step, self.previous = control, step, previous
        self.failed = ""
        self.inconclusive = ""
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        if not self.previous:
            self.control.record("background-analysis", ", ".join(t.template_name for t in self.step.templates))
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            resolved = await arguments(self.control, self.step)
        except AnalysisFailed as failed:
            return self._fail(str(failed))
        result = await AnalysisRunner(self.control, background=True).run(resolved, self.previous)
        self.control.record(f"background-analysis-{result.phase.lower()}", result.message)
        metrics.analysed(result.phase)
        if result.phase == "Failed":
            self._fail(result.message)
        elif result.phase == "Inconclusive":
            self.inconclusive = result.message

    def _fail(self, message: str) -> None:
        self.failed = f"background analysis failed: {message}"
        self.control.announce("analysis-failed", "critical", self.failed)
        self.control.request_abort(self.failed, by="analysis")

    async def check(self, index: int) -> None:
        if self.inconclusive:
            message, self.inconclusive = self.inconclusive, ""
            await self.control.pause(index, None, reason=Reason.ANALYSIS_INCONCLUSIVE,
                                     what=f"background analysis inconclusive: {message}: promote to go on, "
                                          "abort to roll back")

    async def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.task is not None:
            try:
                await self.task
            except (asyncio.CancelledError, RolloutAborted, ActivityError):
                pass
