"""A/B test: the audience the spec matches (a header or cookie) is served the new version through the
traffic router while everyone else stays on stable, for `duration` or until someone decides. Promote
makes it stable for all; abort (or `afterDuration: abort`) ends the test and removes it. The steps are
the canary's (`setCanaryScale`, `setHeaderRoute`, `pause`), so every guarantee of the canary holds."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.durations import format_duration
    from models.spec import AbTestStrategy, CanaryStrategy
    from models.status import RolloutInput, RolloutStatus
    from workflows.canary import CanaryRollout
    from workflows.errors import RolloutAborted


@workflow.defn(name="ABTestRollout")
class ABTestRollout(CanaryRollout):
    @workflow.init
    def __init__(self, request: RolloutInput) -> None:
        super().__init__(request)

    @property
    def test(self) -> AbTestStrategy:
        assert self.spec.strategy.ab_test is not None
        return self.spec.strategy.ab_test

    def canary_spec(self) -> CanaryStrategy:
        return self.test.as_canary()

    async def before_promotion(self) -> None:
        if self.test.duration is not None and self.test.after_duration == "abort":
            raise RolloutAborted(f"the A/B test ended after {format_duration(self.test.duration)} (afterDuration: abort)")

    @workflow.run
    async def run(self, request: RolloutInput) -> RolloutStatus:
        return await super().run(request)
