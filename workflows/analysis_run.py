"""`rollout analyze -f FILE`: a one-off analysis with the spec's (or the shipped) templates, as a
workflow of its own — durable like any other, its status the rollout status model (`analysis` holds
every metric). Healthy when Successful; Degraded with reason AnalysisFailed or AnalysisInconclusive."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.presets import resolve
    from models.status import Phase, Reason, RolloutInput, RolloutStatus
    from workflows.analysis import AnalysisRunner
    from workflows.control import RolloutAborted, RolloutControl


@workflow.defn(name="AnalysisRun")
class AnalysisRun(RolloutControl):
    @workflow.init
    def __init__(self, request: RolloutInput) -> None:
        super().__init__(request)
        self.status.strategy = "analysis"

    @workflow.run
    async def run(self, request: RolloutInput) -> RolloutStatus:
        assert request.analyze is not None
        names = ", ".join(t.template_name for t in request.analyze.templates)
        self.start(1)
        self.start_step(0, f"analysis {names}")
        try:
            result = await AnalysisRunner(self).run(resolve(self.rollout.spec.analysis.templates, request.analyze))
        except RolloutAborted as aborted:
            return self.finish(Phase.DEGRADED, Reason.ABORTED.value, str(aborted))
        if result.phase == "Successful":
            return self.finish(Phase.HEALTHY, message=f"analysis {names} successful")
        reason = Reason.ANALYSIS_FAILED if result.phase == "Failed" else Reason.ANALYSIS_INCONCLUSIVE
        return self.finish(Phase.DEGRADED, reason.value, result.message)
