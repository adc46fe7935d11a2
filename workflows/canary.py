"""Canary: run the step list (setWeight, setCanaryScale, setHeaderRoute, setMirrorRoute through the
target — on Kubernetes the spec's traffic router; timed or open pauses),
then promote the stable version to the new image and remove the canary. An abort, a failed step
or a progress deadline sends all traffic back to stable and ends Degraded. How each step is done is the
delivery target's (workflows/targets/)."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from models.delivery import PrepareCanaryResult
    from models.durations import format_duration
    from models.routing import RouteState, SetCanaryScale, describe_routes
    from models.spec import CanaryStep, CanaryStrategy
    from models.status import Phase, Reason, RolloutInput, RolloutStatus
    from workflows.analysis import BackgroundRun, gate
    from workflows.approval import await_approval
    from workflows.continuation import PATCH as CONTINUE_AS_NEW
    from workflows.continuation import ContinueAsNew
    from workflows.control import RolloutControl, StatusQuery, failure_reason
    from workflows.errors import AnalysisFailed, RolloutAborted, WebhookFailed
    from workflows.handlers import Abort, Approve, Hold, Promote, SetWeight, SkipAnalysis, supported_by
    from workflows.targets import delivery_for
    from workflows.webhooks import Webhooks


@workflow.defn(name="CanaryRollout")
class CanaryRollout(StatusQuery, Abort, Promote, Approve, Hold, SkipAnalysis, SetWeight):
    @workflow.init
    def __init__(self, request: RolloutInput) -> None:
        self.control = RolloutControl(request, supported_by(type(self)) | {"full"})
        self.rules = self.control.rules
        self.spec = self.control.rollout.spec
        self.control.on_set_weight = self.apply_weight
        self.target = delivery_for(self.spec, self.control.status.rollout_id)
        self.control.template_hash = self.target.revisions("canary")  # Latest the canary's, Stable the stable's
        self.routes = RouteState()
        self.canary_scale: SetCanaryScale | None = None
        self.total_replicas = 0
        resume = self.control.resume  # only a continued run's (workflows/continuation.py)
        if resume is not None:
            self.routes, self.canary_scale = resume.routes, resume.canary_scale
            self.total_replicas = resume.total_replicas
        self.hooks = Webhooks(self.control, self.spec.webhooks) if self.spec.webhooks else None

    @workflow.run
    async def run(self, request: RolloutInput) -> RolloutStatus:
        status = await self._rollout()
        if self.hooks:
            await self.hooks.finished()
        return await self.control.wrap_up(status)

    async def _rollout(self) -> RolloutStatus:
        spec = self.spec
        canary = self.canary_spec()
        self.control.may_continue = workflow.patched(CONTINUE_AS_NEW)
        self.control.approval_steps = [i for i, step in enumerate(canary.steps) if step.approval is not None]
        resume = self.control.resume
        if resume is None:
            self.control.start(len(canary.steps))
            ended = await self.control.begin()
            if ended is not None:
                return ended
            try:
                prepared = await self.target.prepare_canary(canary)
            except ActivityError as error:
                reason, message = failure_reason(error)
                return self.control.finish(Phase.DEGRADED, reason, message)
        else:  # a new run of this rollout: prepared already; the wait at resume.step is re-entered below
            prepared = PrepareCanaryResult(total_replicas=resume.total_replicas, stable_image=self.control.status.stable_image,
                                           container=resume.container)
        self.control.status.stable_image = prepared.stable_image
        self.total_replicas = prepared.total_replicas
        self.control.status.stable_replicas = prepared.total_replicas
        background = BackgroundRun(self.control, canary.analysis, resume and self.control.status.analysis) if canary.analysis else None
        hooks = self.hooks
        first = resume.step if resume is not None else 0
        index = first
        try:
            if hooks:
                if resume is None:
                    await hooks.gate("confirm-rollout", 0)
                    await hooks.check("pre-rollout", "pre-rollout")
                hooks.watch_rollback()
            for index, step in enumerate(canary.steps):
                if index < first:
                    continue
                if self.control.pending.promote_full:
                    self.control.record("promote-full", f"steps {index + 1}-{len(canary.steps)} skipped")
                    break
                if background and background.task is None and index >= canary.analysis.starting_step:
                    background.start()
                if self.control.abort_requested:
                    raise RolloutAborted(self.control.abort_requested.reason)
                with self.control.waiting_long():
                    await self.control.step_gate(index)
                if background:
                    await background.check(index)
                if hooks:
                    await hooks.notify(f"step {index + 1}: {step.kind}")
                    if step.kind not in ("pause", "approval", "analysis"):
                        await hooks.check("rollout", f"step {index + 1}")
                if step.pause is not None:
                    duration = step.pause.duration
                    what = f"pause {format_duration(duration)}" if duration is not None else "pause until promoted"
                    self.control.start_step(index, what)
                    with self.control.waiting_long():
                        await self.control.pause(index, self.control.remaining_pause(index, duration))
                elif step.analysis is not None:
                    await gate(self.control, index, step.analysis)
                elif step.approval is not None:
                    self.control.start_step(index, step.describe())
                    with self.control.waiting_long():
                        await await_approval(self.control, index, step.approval, step.approval.description or f"step {index + 1}")
                else:
                    await self._route(index, step, prepared.total_replicas, canary)
            if background:
                await background.stop()
            if hooks:
                await hooks.gate("confirm-promotion", len(canary.steps) - 1)
                await hooks.stop()
            await self.before_promotion()
        except ContinueAsNew as wait:
            if background:
                await background.stop()
            if hooks:
                await hooks.stop()
            await self.control.continue_as_new(wait, index, container=prepared.container, total_replicas=self.total_replicas,
                                       routes=self.routes, canary_scale=self.canary_scale)
        except WebhookFailed as failed:
            return await self._roll_back(prepared, Reason.WEBHOOK_FAILED.value, str(failed), background)
        except AnalysisFailed as failed:
            return await self._roll_back(prepared, Reason.ANALYSIS_FAILED.value, str(failed), background)
        except RolloutAborted as aborted:
            reason = Reason.ANALYSIS_FAILED if background and background.failed else aborted.reason
            return await self._roll_back(prepared, reason.value, str(aborted), background)
        except ActivityError as error:
            reason, message = failure_reason(error)
            return await self._roll_back(prepared, reason, message, background)

        self.control.change_phase(Phase.PROGRESSING, message="promoting: stable takes the new image")
        try:
            await self.target.promote_canary(canary, prepared)
        except ActivityError as error:
            reason, message = failure_reason(error)
            return await self._roll_back(prepared, reason, message)
        self.control.status.expose(100, 100.0)
        self.control.status.canary_replicas, self.control.status.stable_replicas = 0, prepared.total_replicas
        self.control.status.stable_image, self.control.status.routes = spec.image, []
        return await self.control.healthy(f"{spec.image} is stable")

    def canary_spec(self) -> CanaryStrategy:
        assert self.spec.strategy.canary is not None
        return self.spec.strategy.canary

    async def before_promotion(self) -> None:
        """After the last step: a subclass may end the rollout here (raise RolloutAborted)."""

    async def apply_weight(self, weight: int) -> None:
        """`setWeight` while paused: the same routing activity as a setWeight step, at the current step."""
        canary = self.canary_spec()
        step = CanaryStep.model_validate({"setWeight": weight})
        await self._route(self.control.status.current_step, step, self.total_replicas, canary, announce=False)

    async def _route(self, index: int, step: CanaryStep, total: int, canary: CanaryStrategy, announce: bool = True) -> None:
        """setWeight, setCanaryScale, setHeaderRoute, setMirrorRoute: the new routing as a whole, applied
        by one idempotent activity (capacity first)."""
        if step.set_weight is not None:
            self.routes = self.routes.model_copy(update={"weight": step.set_weight})
            what = f"setWeight {step.set_weight}"
        elif step.set_canary_scale is not None:
            self.canary_scale = step.set_canary_scale
            what = f"setCanaryScale {step.set_canary_scale.model_dump(by_alias=True, exclude_none=True)}"
        elif step.set_header_route is not None:
            self.routes = self.routes.with_header_route(step.set_header_route)
            what = f"setHeaderRoute {step.set_header_route.name}{'' if step.set_header_route.match else ' (removed)'}"
        else:
            assert step.set_mirror_route is not None
            self.routes = self.routes.with_mirror_route(step.set_mirror_route)
            what = f"setMirrorRoute {step.set_mirror_route.name} {step.set_mirror_route.percentage or 'removed'}"
        weight = self.routes.weight
        if announce:
            self.control.start_step(index, what)
        handle = self.target.set_routes(canary, index, total, self.routes, self.canary_scale,
                                        f"set weight {weight}%" if step.set_weight is not None else what)
        result = await self.control.run_interruptible(handle)
        s = self.control.status
        s.expose(result.weight, result.actual_weight)
        s.canary_replicas, s.stable_replicas = result.canary_replicas, result.stable_replicas
        s.routes = describe_routes(self.routes)
        if step.set_weight is not None:
            self.control.record("weight-set", f"{weight}% ({result.canary_replicas} canary / {result.stable_replicas} stable)")
        else:
            self.control.record("routes-set", f"{what}: {'; '.join(s.routes) or 'weight only'} "
                                      f"({result.canary_replicas} canary / {result.stable_replicas} stable)")

    async def _roll_back(self, prepared: PrepareCanaryResult, reason: str, message: str,
                         background: BackgroundRun | None = None) -> RolloutStatus:
        if background:
            await background.stop()
        if self.hooks:
            await self.hooks.stop()
        self.control.record("aborting", message)
        self.control.change_phase(Phase.PROGRESSING, reason, f"aborting: {message}; sending all traffic back to stable")
        try:
            await self.target.abort_canary(self.canary_spec(), prepared)
        except ActivityError as error:
            _, abort_message = failure_reason(error)
            return self.control.finish(Phase.DEGRADED, Reason.ABORT_FAILED.value, f"{message}; abort failed: {abort_message}")
        s = self.control.status
        s.expose(0, 0.0)
        s.canary_replicas, s.routes = 0, []
        s.stable_replicas = prepared.total_replicas
        return self.control.finish(Phase.DEGRADED, reason, message)
