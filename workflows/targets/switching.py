"""What the adapters of the targets that switch traffic through activities of their own (ECS: the ALB;
Compose hosts: HAProxy) share: the request every one of their activities gets, starting one on the delivery
options, and blue-green's calls. Their activities are named `<verb>_<NAME>_<noun>`; each target brings its
own input models (`REQUEST`, `SWITCH`) and what its steps are called (`SUMMARIES`, `words`)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.delivery import BlueGreenPrepared, Wording


class SwitchingDelivery:
    NAME: ClassVar[str]  # "ecs", "compose": the middle of the activities' names
    REQUEST: ClassVar[type]  # what every activity is told (the rollout, the target, the image, the deadline)
    SWITCH: ClassVar[type]  # blue-green's: where production goes, the preview's share or size
    SUMMARIES: ClassVar[dict[str, str]]  # prepare, complete, abort: as the Web UI shows them

    spec: Any
    rollout_id: str
    target: Any
    options: dict[str, Any]
    words: Wording
    prepared: BlueGreenPrepared | None = None

    def _request(self) -> dict[str, Any]:
        return {"rollout_id": self.rollout_id, "target": self.target, "image": self.spec.image,
                "progress_deadline_seconds": self.spec.progress_deadline_seconds}

    def _start(self, name: str, arg: Any, summary: str, result: type | None = None) -> Any:
        return workflow.start_activity(name, arg, result_type=result, summary=summary, **self.options)

    # -- blue-green --------------------------------------------------------------------------------------
    def prepare_blue_green(self, blue_green: Any):
        return self._start(f"prepare_{self.NAME}_blue_green", self.REQUEST(**self._request()),
                           self.SUMMARIES["prepare"], BlueGreenPrepared)

    def blue_green_prepared(self, prepared: BlueGreenPrepared) -> None:
        self.prepared = prepared

    @property
    def blue_green_switchable(self) -> bool:
        return self.prepared is not None and bool(self.prepared.stable_hash)

    def scale_preview(self, replicas: int):
        return self._start(f"scale_{self.NAME}_preview", self.SWITCH(**self._request(), replicas=replicas),
                           f"preview to {replicas} {self.words.instances}", int)

    def shift_traffic(self, weight: int):
        return self._start(f"shift_{self.NAME}_traffic", self.SWITCH(**self._request(), weight=weight),
                           f"shift {weight}% to preview", int)

    def switch_active(self, to: Literal["preview", "stable"], summary: str):
        return self._start(f"switch_{self.NAME}_production", self.SWITCH(**self._request(), to=to), summary, str)

    def complete_blue_green(self):
        return self._start(f"complete_{self.NAME}_blue_green", self.REQUEST(**self._request()),
                           self.SUMMARIES["complete"])

    def abort_blue_green(self):
        return self._start(f"abort_{self.NAME}_blue_green", self.REQUEST(**self._request()), self.SUMMARIES["abort"])
