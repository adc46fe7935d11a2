"""The flag channel: a Release's `spec.channel.flag` block, and its activities' wire models.

The flag's definition lives in a flag store (today a flagd flag-definition file, read by applications
through OpenFeature's flagd provider in FILE mode). A phase gives the released variant a share of
users by flagd's `fractional` operator over the `targetingKey`; the variant order and the total weight
(10,000) never change, so each phase's users are a superset of the last's.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from models.specbase import Message, SpecModel


class FlagChannel(SpecModel):
    """`spec.channel.flag`: one flag in a flag store."""

    file: str = Field(min_length=1, description="the flagd flag-definition file (JSON) the applications read")
    flag: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    baseline: str = Field("off", min_length=1, description="the variant everyone outside the rollout gets")
    variants: dict[str, Any] = Field(
        default_factory=lambda: {"on": True, "off": False},
        description="the flag's variants and their values, when the store does not define the flag yet")

    def describe(self) -> str:
        return f"flagd:{self.file}#{self.flag}"


class FlagInput(Message):
    """Give `variant` `basis_points` of 10,000 users (the rest get the channel's baseline)."""

    channel: FlagChannel
    variant: str
    basis_points: int = Field(ge=0, le=10_000)


class FlagState(Message):
    variant: str = ""
    basis_points: int = 0
    revision: str = Field("", description="the store's revision of the definition written (a content hash)")
