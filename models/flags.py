"""The flag channel: a Release's `spec.channel.flag` block, and its activities' wire models.

The flag's definition lives in a flag store (a flagd flag-definition document in a file, an S3 object
or a ConfigMap key, read by applications through OpenFeature's flagd provider in FILE mode; or a flag
in Unleash). A phase gives the released variant a share of users by flagd's `fractional` operator,
moving weight only between the released variant and the baseline next to it, so each phase's users
are a superset of the last's (activities/targets/flag/fractional.py).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from models.specbase import DnsLabel, DnsSubdomain, Message, SpecModel


class FlagObject(SpecModel):
    """A flag-definition document kept as an S3 object (the applications sync it to the file they read)."""

    bucket: str = Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.-]+[a-z0-9]$")
    key: str = Field(min_length=1, max_length=1024)
    endpoint: str | None = Field(None, pattern=r"^https?://", description="S3 endpoint (default: the worker's)")
    denied_is_missing: bool = Field(False, description=(
        "the worker may not list the bucket (no s3:ListBucket), so S3 answers a key that does not exist yet "
        "with 403 AccessDenied instead of 404: take that 403 on reading as 'no document yet'"))


class FlagConfigMap(SpecModel):
    """A flag-definition document kept in a ConfigMap (mounted into the applications' pods, where their
    flagd provider reads it as a file)."""

    context: str = Field("local", min_length=1, description="kubeconfig context of the cluster")
    namespace: DnsLabel
    name: DnsSubdomain
    key: str = Field("flags.json", pattern=r"^[-._a-zA-Z0-9]+$", max_length=253)


class UnleashFlag(SpecModel):
    """A flag in Unleash: its `flexibleRollout` strategy's `rollout` (whole percents) is what phases set,
    through the admin API (token: `$DURABLE_ROLLOUTS_UNLEASH_TOKEN`, read by the activity)."""

    url: str = Field(pattern=r"^https?://", description="the Unleash server, e.g. https://unleash.example/api is url/api")
    project: str = Field("default", min_length=1, max_length=100)
    environment: str = Field("production", min_length=1, max_length=100)
    strategy: str | None = Field(None, min_length=1, max_length=100, description=(
        "the flexibleRollout strategy to ramp, by id or title (needed when the environment has several)"))


class FlagChannel(SpecModel):
    """`spec.channel.flag`: one flag in a flag store — a flagd flag-definition file on disk (or a shared
    volume), that document as an S3 object or in a ConfigMap key, or a flag in Unleash."""

    file: str | None = Field(None, min_length=1, description="the flagd flag-definition file (JSON)")
    s3: FlagObject | None = None
    config_map: FlagConfigMap | None = None
    unleash: UnleashFlag | None = None
    flag: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    baseline: str = Field("off", min_length=1, description="the variant everyone outside the rollout gets")
    variants: dict[str, Any] = Field(
        default_factory=lambda: {"on": True, "off": False},
        description="the flag's variants and their values, when the store does not define the flag yet")

    @model_validator(mode="after")
    def _one_store(self) -> FlagChannel:
        if sum(store is not None for store in (self.file, self.s3, self.config_map, self.unleash)) != 1:
            raise ValueError("a flag lives in exactly one store: give file, s3, configMap or unleash")
        return self

    @property
    def store_kind(self) -> str:
        kinds = {"file": self.file, "s3": self.s3, "configMap": self.config_map, "unleash": self.unleash}
        return next(kind for kind, store in kinds.items() if store is not None)

    def artifact_fields(self) -> tuple[str, ...]:
        return ("variant",)

    def check_variants(self, spec: Any) -> None:
        """A document's variants, when it gives them: the released variant and the baseline among them. A
        flag the store already defines is checked against its own when the release prepares (refused
        before any write, activities/targets/flag)."""
        if "variants" in self.model_fields_set:
            for field, name in (("artifact.variant", spec.artifact.variant), ("channel.flag.baseline", self.baseline)):
                if name not in self.variants:
                    raise ValueError(f"@{field}: {name!r} is not one of channel.flag.variants "
                                     f"({', '.join(sorted(self.variants))})")

    def check(self, spec: Any) -> None:
        if spec.artifact.variant == self.baseline:
            raise ValueError(f"@channel.flag.baseline: {self.baseline!r} is also the released variant "
                             "(artifact.variant): release another variant, or name another baseline")
        if self.unleash is not None:
            for index, phase in enumerate(spec.phases):
                if phase.points % 100:
                    raise ValueError(f"@phases[{index}]: Unleash rolls out whole percents, not {phase.points / 100:g}%")

    def describe(self) -> str:
        if self.unleash is not None:
            return f"unleash:{self.unleash.url}#{self.unleash.project}/{self.flag}@{self.unleash.environment}"
        if self.config_map is not None:
            c = self.config_map
            return f"flagd:configmap/{c.context}/{c.namespace}/{c.name}/{c.key}#{self.flag}"
        where = self.file if self.file is not None else f"s3://{self.s3.bucket}/{self.s3.key}"
        return f"flagd:{where}#{self.flag}"


class FlagInput(Message):
    """Give `variant` `basis_points` of 10,000 users (the rest get the channel's baseline)."""

    channel: FlagChannel
    variant: str
    basis_points: int = Field(ge=0, le=10_000)
    plan: list[int] = Field(default_factory=list, description=(
        "on a read: the shares the release will write, phase by phase then 10,000; the read refuses "
        "(non-retryable, naming why) unless the store can write each and none is below the share now"))
    restore: list[list[Any]] | None = Field(None, description=(
        "on a write: the flag's fractional entries read before the release (FlagState.entries), written "
        "back exactly when the flag holds only the channel's ramps of them (else `basis_points` is)"))


class FlagState(Message):
    variant: str = ""
    basis_points: int = 0
    revision: str = Field("", description="the store's revision of the definition written (a content hash)")
    entries: list[list[Any]] | None = Field(None, description=(
        "on a read of a flagd store: the flag's fractional entries as written ([variant, weight]), to restore"))
