"""`rollout analyze -f FILE`: a one-off analysis with the spec's (or the shipped) templates, as a
workflow of its own — durable like any other, its status the rollout status model (`analysis` holds
every metric). Healthy when Successful; Degraded with reason AnalysisFailed or AnalysisInconclusive."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.presets import resolve
    from models.status import AnalyzeInput, Phase, Reason, RolloutStatus
    from workflows.analysis import AnalysisRunner
    from workflows.control import RolloutControl, StatusQuery
    from workflows.errors import RolloutAborted
    from workflows.handlers import Abort, SkipAnalysis, supported_by


@workflow.defn(name="AnalysisRun")
class AnalysisRun(StatusQuery, Abort, SkipAnalysis):
    @workflow.init
    def __init__(self, request: AnalyzeInput) -> None:
        self.control = RolloutControl(request, supported_by(type(self)))
        self.rules = self.control.rules
        self.control.status.strategy = "analysis"

    @workflow.run
    async def run(self, request: AnalyzeInput) -> RolloutStatus:
        names = ", ".join(t.template_name for t in request.analyze.templates)
        self.control.start(1)
        self.control.start_step(0, f"analysis {names}")
        try:
            result = await AnalysisRunner(self.control).run(resolve(self.control.rollout.spec.analysis.templates, request.analyze))
        except RolloutAborted as aborted:
            return self.control.finish(Phase.DEGRADED, Reason.ABORTED.value, str(aborted))
        if result.phase == "Successful":
            return self.control.finish(Phase.HEALTHY, message=f"analysis {names} successful")
        reason = Reason.ANALYSIS_FAILED if result.phase == "Failed" else Reason.ANALYSIS_INCONCLUSIVE
        return self.control.finish(Phase.DEGRADED, reason.value, result.message)
