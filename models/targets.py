"""`spec.target`: where a rollout delivers — one block naming the delivery target, each target's fields its
own model. Today: `kubernetes` (a Deployment), `ecs` (an ECS service's task sets behind an ALB,
models/ecs.py) and `composeHost` (a Compose project's service on a Docker host, models/compose.py). Each target's model is also its record: the task-queue
family whose workers hold its credentials (a rollout starts on it), what it can do (`Capabilities`,
declared), its `DeliveryTarget` adapter for the strategies (workflows/targets/), the factory of its
activities (built by the worker from the worker's clients) and the name of the activity `ObserveTarget`
asks. The adapter and the factory are named as "module:attribute" and imported only when the worker or
the workflows resolve them (`resolve`). A new target is one more optional field of `Target` below, its
model and its packages."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, model_validator

from models.compose import ComposeHostTarget
from models.delivery import Capabilities
from models.ecs import EcsTarget
from models.specbase import DnsLabel, DnsSubdomain, Message, OneOf, SpecModel
from models.workloads import DAEMON_SET, STATEFUL_SET, InPlaceRules, NodeOrder


class KubernetesTarget(SpecModel):
    """`spec.target.kubernetes`: a workload in a cluster (a kubeconfig context) — a Deployment, a StatefulSet (a
    canary by its rolling update's partition) or a DaemonSet (node by node): models/workloads.py."""

    FAMILY: ClassVar[str] = "kubernetes"
    CAPABILITIES: ClassVar[Capabilities] = Capabilities(
        weights=True, header_routes=True, mirrors=True, instant_switch=True, warm_rollback_window=True,
        in_place_rolling=True)  # header routes and mirrors: where the router can (models/routing.py checks)
    DELIVERY: ClassVar[str] = "workflows.targets.kubernetes:delivery"
    ACTIVITIES: ClassVar[str] = "activities.targets.kubernetes:activities"
    OBSERVER: ClassVar[str] = "observe_kubernetes_target"
    INSTANCES: ClassVar[str] = "pods"
    VALUE_FROM: ClassVar[str] = "podTemplateHashValue"  # what an analysis arg's valueFrom reads (models/capabilities.py)

    context: str = Field("local", min_length=1, description="kubeconfig context of the cluster")
    namespace: DnsLabel
    deployment: DnsSubdomain | None = Field(None, description="the Deployment to roll (or statefulSet, daemonSet)")
    stateful_set: DnsSubdomain | None = Field(None, description="the StatefulSet to roll (or deployment, daemonSet)")
    daemon_set: DnsSubdomain | None = Field(None, description="the DaemonSet to roll (or deployment, statefulSet)")
    nodes: NodeOrder | None = Field(None, description="daemonSet: the order its nodes are updated in")

    @model_validator(mode="after")
    def _one_workload(self) -> KubernetesTarget:
        if sum(name is not None for name in (self.deployment, self.stateful_set, self.daemon_set)) != 1:
            raise ValueError("name exactly one workload: deployment, statefulSet or daemonSet")
        if self.nodes is not None and self.daemon_set is None:
            raise ValueError("@nodes: the order of a daemonSet's nodes; this target rolls no DaemonSet")
        return self

    @property
    def workload(self) -> str:
        return self.deployment or self.stateful_set or self.daemon_set or ""

    @property
    def in_place(self) -> InPlaceRules | None:
        """The rules of a workload updated in place (models/workloads.py); None for a Deployment."""
        return STATEFUL_SET if self.stateful_set else DAEMON_SET if self.daemon_set else None

    @property
    def capabilities(self) -> Capabilities:
        return self.in_place.CAPABILITIES if self.in_place else self.CAPABILITIES

    def describe(self) -> str:
        kind = "" if self.deployment else "statefulset/" if self.stateful_set else "daemonset/"
        return f"{self.context}/{self.namespace}/{kind}{self.workload}"

    def spec_problem(self, spec: Any) -> str:
        """A StatefulSet's or DaemonSet's own limits (models/workloads.py); none for a Deployment."""
        return self.in_place.spec_problem(spec) if self.in_place else ""

    def strategy_problem(self, strategy: Any) -> str:
        """The Services (and the A/B test's router) a strategy needs on Kubernetes (models/capabilities.py)."""
        if self.in_place:
            return ""  # spec_problem says what a StatefulSet or DaemonSet takes
        needs = {"canary": ("stableService", "canaryService"), "abTest": ("stableService", "canaryService",
                                                                        "trafficRouting"),
                 "blueGreen": ("activeService", "previewService")}
        block = strategy.chosen_value
        for field in needs.get(strategy.name, ()):
            if getattr(block, _snake(field)) is None:
                return f"@strategy.{strategy.name}.{field}: required field is missing"
        return ""


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


class Target(OneOf):
    WHAT: ClassVar[str] = "delivery target"

    kubernetes: KubernetesTarget | None = None
    ecs: EcsTarget | None = None
    compose_host: ComposeHostTarget | None = None

    @property
    def kind(self) -> str:
        return self.chosen_key

    @property
    def chosen(self) -> KubernetesTarget | EcsTarget | ComposeHostTarget:
        """The chosen target's own block."""
        return self.chosen_value

    @property
    def family(self) -> str:
        """The task-queue family whose workers run this target's rollouts (models/names.py)."""
        return self.chosen.FAMILY

    @classmethod
    def models(cls) -> dict[str, type[SpecModel]]:
        """Every target's model by its key: the records the worker and the workflows read."""
        return {field.alias or name: field.annotation.__args__[0] for name, field in cls.model_fields.items()}

    def describe(self) -> str:
        return self.chosen.describe()


TARGETS = Target.CHOICES = tuple(Target.models())  # the keys as written, from the fields above


def resolve(reference: str):
    """A record's "module:attribute" (a class, a function), imported when its reader asks."""
    import importlib

    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


class ObserveInput(Message):
    """`ObserveTarget`'s input: the target to look at, as the spec names it."""

    target: Target


class TargetObservation(Message):
    """What a target runs now, read from the target itself (not from any workflow's memory)."""

    target: str = Field(description="the target, as `describe()` names it")
    version: str = Field(description="the version it runs now: an image for Kubernetes")
    ready: bool = Field(description="settled on that version: every wanted instance ready, nothing else left")
    detail: str = ""
    instances: int | None = Field(None, description="instances seen running the version, read from them (a "
                                                    "Kubernetes target: the current revision's pods); None: not read")
    revision: str = Field("", description="which revision they are (Kubernetes: the pod-template-hash)")
