"""The composeHost target's `DeliveryTarget`: a Compose project's service on one Docker host. In place
(rollingUpdate, recreate, undo, restart: activities/targets/compose/inplace.py) and a canary through the
proxy on the host (canary.py), blue-green through it (bluegreen.py); its record refuses what it cannot run
yet (A/B tests, the rollback window: models/compose.py), so those calls are never reached."""

from __future__ import annotations

from typing import Any, Literal

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from models.compose import (
        ComposeHostTarget,
        ComposeRequest,
        ComposeRollOutInput,
        ComposeRoutesInput,
        ComposeSwitchInput,
    )
    from models.delivery import (
        InPlaceUpdate,
        PrepareCanaryResult,
        RollOutResult,
        WeightResult,
        Wording,
    )
    from models.routing import RouteState, SetCanaryScale
    from models.spec import CanaryStrategy, RolloutSpecBody
    from workflows import options
    from workflows.targets.switching import SwitchingDelivery


class ComposeDelivery(SwitchingDelivery):
    capabilities = ComposeHostTarget.CAPABILITIES
    NAME, REQUEST, SWITCH = "compose", ComposeRequest, ComposeSwitchInput
    SUMMARIES = {"prepare": "stable containers in the proxy's backend",
                 "complete": "the old containers drained and removed", "abort": "remove the preview"}

    def __init__(self, spec: RolloutSpecBody, rollout_id: str) -> None:
        self.spec, self.rollout_id = spec, rollout_id
        self.target: ComposeHostTarget = spec.target.compose_host
        self.options = options.delivery(spec.progress_deadline_seconds)
        proxy = self.target.proxy
        self.words = Wording(f"proxy backend {proxy.backend}" if proxy else "the service",
                             f"proxy backend {proxy.preview_backend}" if proxy and proxy.preview_backend else
                             "the preview containers", ComposeHostTarget.INSTANCES,
                             "the old containers are drained and removed")

    def _input(self, **fields: Any) -> ComposeRollOutInput:
        return ComposeRollOutInput(**self._request(), **fields)

    def revisions(self, shape: Literal["canary", "blueGreen", "inPlace"]):
        return None  # no analysis arg names a side by valueFrom on this target

    # -- canary (through the proxy) ----------------------------------------------------------------------
    def prepare_canary(self, canary: CanaryStrategy):
        return self._start("prepare_compose_canary", ComposeRequest(**self._request()),
                           "stable containers in the proxy's backend", PrepareCanaryResult)

    def set_routes(self, canary: CanaryStrategy, step: int, total: int, routes: RouteState,
                   canary_scale: SetCanaryScale | None, summary: str):
        return self._start("set_compose_routes", ComposeRoutesInput(**self._request(), step=step, total_replicas=total,
                                                                    routes=routes, canary_scale=canary_scale),
                           summary, WeightResult)

    def promote_canary(self, canary: CanaryStrategy, prepared: PrepareCanaryResult):
        return self._start("promote_compose_canary", ComposeRequest(**self._request()),
                           "promote: canary containers take every weight, the stable ones drained")

    def abort_canary(self, canary: CanaryStrategy, prepared: PrepareCanaryResult):
        return self._start("abort_compose_canary", ComposeRequest(**self._request()),
                           "abort: every weight back to the stable containers")

    # -- in place ----------------------------------------------------------------------------------------
    def roll_out(self, update: InPlaceUpdate, summary: str):
        return self._start("roll_out_compose", self._input(**update.model_dump(exclude={"image"})), summary,
                           RollOutResult)

    def undo(self):
        return self._start("undo_compose", self._input(kind="Undo", restarted_at=workflow.info().run_id),
                           "undo: back to the previous configuration", str)

    # -- no rollback window here yet (validation refuses it) ---------------------------------------------
    def _not_here(self, *_: Any, **__: Any):
        raise ApplicationError(f"{self.target.describe()}: no rollback window on this target yet (validation "
                               "refuses it)", type="InvalidTarget", non_retryable=True)

    open_window = switch_to_warm = close_window = _not_here
