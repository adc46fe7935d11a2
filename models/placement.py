"""Where a pipeline stage's rollout runs on one of its targets: the wave's `Target` (a Kubernetes cluster by
kubeconfig context; an ECS service by the fields of the template's `target.ecs` it changes — another
region needs its own load balancer, subnets and security groups; a Compose host by the fields of
`target.composeHost` it changes, usually `host`) and `placed`, the template's target block moved there. The
kind of every target must be the template's."""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError, model_validator

from models.specbase import DnsLabel, SpecModel, describe_errors
from models.targets import Target as DeliveryTarget


class Target(SpecModel):
    """One place a stage deploys to, with its own overrides."""

    context: str | None = Field(None, min_length=1, max_length=253, description="Kubernetes: the kubeconfig context")
    region: str = Field("", max_length=63, description="a label for the status (Kubernetes)")
    namespace: DnsLabel | None = None
    ecs: dict[str, Any] | None = Field(None, description="ECS: the fields of the template's target.ecs this target "
                                                          "changes (region, cluster, service, loadBalancer, network)")
    compose_host: dict[str, Any] | None = Field(None, description="a Compose host: the fields of the template's "
                                                                  "target.composeHost this target changes (host, …)")

    @model_validator(mode="after")
    def _one_kind(self) -> Target:
        if sum(value is not None for value in (self.context, self.ecs, self.compose_host)) != 1:
            raise ValueError("@context: a target is a Kubernetes context, an ecs block or a composeHost block, one of them")
        if self.context is None and self.namespace is not None:
            raise ValueError(f"@namespace: a Kubernetes field; a {self.kind} target changes its {self.kind} block")
        return self

    @property
    def kind(self) -> str:
        return "kubernetes" if self.context is not None else "ecs" if self.ecs is not None else "composeHost"

    @property
    def key(self) -> str:
        if self.ecs is not None:
            return "/".join(str(self.ecs[k]) for k in ("region", "cluster", "service") if self.ecs.get(k)) or "ecs"
        if self.compose_host is not None:
            return "/".join(str(self.compose_host[k]) for k in ("host", "project", "service")
                            if isinstance(self.compose_host.get(k), str)) or "composeHost"
        return self.context if not self.namespace else f"{self.context}.{self.namespace}"


def _merged(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """`change` over `base`, blocks merged key by key (lists replaced whole)."""
    return {**base, **{k: _merged(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
                       for k, v in change.items()}}


def placed(template: DeliveryTarget, target: Target, namespace: str | None = None,
           deployment: str | None = None) -> DeliveryTarget:
    """The template's target block moved to `target` (with a stage's Kubernetes overrides)."""
    if target.kind != template.kind:
        raise ValueError(f"a {target.kind} target for a template that deploys to {template.kind}")
    if template.kubernetes is not None:
        k8s = template.kubernetes
        if deployment and k8s.deployment is None:
            raise ValueError(f"overrides.deployment: the template rolls {k8s.in_place.kind} {k8s.workload}, not a "
                             "Deployment")
        return template.model_copy(update={"kubernetes": k8s.model_copy(update={
            "context": target.context, "namespace": target.namespace or namespace or k8s.namespace,
            "deployment": deployment or k8s.deployment})})
    change = target.ecs if target.ecs is not None else target.compose_host
    model = type(template.chosen)
    try:
        moved = model.model_validate(_merged(template.chosen.model_dump(by_alias=True, exclude_none=True), change))
    except ValidationError as error:
        raise ValueError(f"{target.kind}." + describe_errors(error)[0]) from None
    field = next(name for name, info in DeliveryTarget.model_fields.items() if (info.alias or name) == target.kind)
    return template.model_copy(update={field: moved})
