"""Pipeline documents for the tests, and a fake fleet of clusters for the workflow-logic tests (the
Kubernetes, registry and check activities replaced under their own names)."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from models.analysis import MeasureInput, Measurement
from models.kubernetes import KubernetesTarget, RollOutInput, RollOutResult, UndoInput
from models.pipeline import BundleInput, Pipeline, ResolvedBundle, parse_pipeline
from models.targets import TargetObservation

DIGEST = "sha256:" + "ab" * 32


def rolling_template(namespace: str, name: str = "web", deadline: int = 20, environment: str = "test") -> dict[str, Any]:
    return {"apiVersion": "rollouts.durable.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": name, "environment": environment},
            "spec": {"target": {"kubernetes": {"context": "local-1", "namespace": namespace, "deployment": "web"}},
                     "image": "registry.local/web:template", "progressDeadlineSeconds": deadline,
                     "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}}


def pipeline_document(name: str, image: str, stages: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "rollouts.durable.dev/v1alpha1", "kind": "Pipeline",
            "metadata": {"name": name, "environment": "test"},
            "spec": {"bundle": {"images": {"web": image}}, "stages": stages, **spec}}


def stage(name: str, namespace: str, contexts: list[str], **fields: Any) -> dict[str, Any]:
    """A stage rolling `web` out on `contexts` (one wave); `template` names the template (its targets'
    rollouts are `rollout/test/<template>-<stage>-<context>`)."""
    wave = {"targets": [{"context": c} for c in contexts], "maxParallel": fields.pop("maxParallel", 1)}
    template = rolling_template(namespace, name=fields.pop("template", "web"), deadline=fields.pop("deadline", 20))
    return {"name": name, "rollout": template,
            "waves": fields.pop("waves", [wave]), **fields}


def pipeline(name: str, image: str, stages: list[dict[str, Any]], **spec: Any) -> Pipeline:
    return parse_pipeline(pipeline_document(name, image, stages, **spec))


class FakeFleet:
    """Deployments by (context, namespace, name) → image; `bad` contexts never get ready; `stale`
    contexts answer the rollout as done but keep running what they ran (a GitOps tool put it back);
    `empty` contexts run the new revision with no pods (scaled to 0); `drifting` contexts go back to
    `before` once they have been read `drift_after` times (put back after their wave was verified)."""

    def __init__(self, before: str = "registry.local/web:1.0.0", bad: tuple[str, ...] = (), stale: tuple[str, ...] = (),
                 seconds: float = 0.0, failing: tuple[str, ...] = (), empty: tuple[str, ...] = (),
                 drifting: tuple[str, ...] = (), drift_after: int = 1):
        self.before, self.bad, self.stale, self.seconds = before, set(bad), set(stale), seconds
        self.failing = set(failing)  # metric names whose measurement fails
        self.empty, self.drifting, self.drift_after = set(empty), set(drifting), drift_after
        self.reads: dict[str, int] = {}
        self.images: dict[tuple[str, str, str], list[str]] = {}
        self.calls: list[str] = []

    def _history(self, t: KubernetesTarget) -> list[str]:
        return self.images.setdefault((t.context, t.namespace, t.deployment), [self.before])

    def activities(self) -> list:
        @activity.defn(name="resolve_bundle")
        async def resolve(request: BundleInput) -> ResolvedBundle:
            return ResolvedBundle(images={k: v if "@" in v else f"{v}@{DIGEST}" for k, v in request.images.items()})

        @activity.defn(name="roll_out_deployment")
        async def roll_out(request: RollOutInput) -> RollOutResult:
            t = request.target
            self.calls.append(f"roll {t.context}")
            if self.seconds:
                await asyncio.sleep(self.seconds)
            history = self._history(t)
            if request.kind == "Undo":  # RevisionRollout: back to the revision before
                self.calls[-1] = f"undo {t.context}"
                previous = history.pop() if len(history) > 1 else history[-1]
                return RollOutResult(previous_image=previous, previous_revision=len(history) + 1,
                                     revision=len(history) + 2, replicas=4, image=history[-1])
            if t.context in self.bad:
                raise ApplicationError(f"{t.deployment}: 0/4 ready after {request.progress_deadline_seconds}s",
                                       type="ProgressDeadlineExceeded", non_retryable=True)
            previous = history[-1]
            if t.context not in self.stale:
                history.append(request.image)
            return RollOutResult(previous_image=previous, previous_revision=len(history) - 1, revision=len(history),
                                 replicas=4, image=request.image)

        @activity.defn(name="undo_deployment")
        async def undo(request: UndoInput) -> str:
            self.calls.append(f"undo {request.target.context}")
            history = self._history(request.target)
            if len(history) > 1:
                history.pop()
            return history[-1]

        @activity.defn(name="observe_kubernetes_target")
        async def observe(t: KubernetesTarget) -> TargetObservation:
            self.calls.append(f"observe {t.context}")
            version = self._history(t)[-1]
            self.reads[t.context] = self.reads.get(t.context, 0) + 1
            if t.context in self.drifting and self.reads[t.context] == self.drift_after:
                self._history(t).append(self.before)  # read `drift_after` times as rolled out; put back then
            pods = 0 if t.context in self.empty else 4
            return TargetObservation(target=t.describe(), version=version, ready=True, detail=f"{pods}/{pods} ready",
                                     instances=pods)

        @activity.defn(name="measure")
        async def measure(request: MeasureInput) -> Measurement:
            self.calls.append(f"measure {request.metric.name}")
            if request.metric.name in self.failing:
                return Measurement(phase="Failed", value="0", message="pending migrations: 2")
            return Measurement(phase="Successful", value="1")

        return [resolve, roll_out, undo, observe, measure]
