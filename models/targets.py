"""`spec.target`: where a release goes — one block naming the delivery target, each target's fields
its own model. Today: `kubernetes` (a Deployment). A new target (an updater channel, a store track, an
MDM ring, an ECS service) is one more optional field here, its model in its own module, and its
activities in its own package under `activities/targets/`; the strategies never look inside."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from models.specbase import DnsLabel, DnsSubdomain, Message, OneOf, SpecModel

TARGETS = ("kubernetes",)


class KubernetesTarget(SpecModel):
    """`spec.target.kubernetes`: a Deployment in a cluster (a kubeconfig context)."""

    context: str = Field("local", min_length=1, description="kubeconfig context of the cluster")
    namespace: DnsLabel
    deployment: DnsSubdomain

    def describe(self) -> str:
        return f"{self.context}/{self.namespace}/{self.deployment}"


class Target(OneOf):
    CHOICES: ClassVar[tuple[str, ...]] = TARGETS
    WHAT: ClassVar[str] = "delivery target"

    kubernetes: KubernetesTarget | None = None

    @property
    def kind(self) -> str:
        return self.chosen_key

    @property
    def chosen(self) -> KubernetesTarget:
        """The chosen target's own block."""
        return self.chosen_value

    def describe(self) -> str:
        return self.chosen.describe()


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
