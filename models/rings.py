"""Rings: how an MDM channel (Intune, the generic MDM) stages a release — device groups added one ring
at a time (pilot → departments → everyone), each ring with its cumulative share of the fleet. A phase
names a ring by its share; after the last phase the last ring (100 %) is added. Shared by the MDM
channels' models."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from models.specbase import DnsLabel, SpecModel


class Ring(SpecModel):
    name: DnsLabel
    groups: list[str] = Field(default_factory=list, max_length=100, description="device group IDs")
    all_devices: bool = Field(False, description="every enrolled device (the last ring)")
    share: float = Field(gt=0, le=100, description="the fleet's share once this ring (and those before) has it")

    @model_validator(mode="after")
    def _targets(self) -> Ring:
        if bool(self.groups) == self.all_devices:
            raise ValueError("a ring gives groups or allDevices: true")
        return self


def check_rings(rings: list[Ring], spec: Any, what: str) -> None:
    """Shares grow to 100 %; every phase's exposure is a ring's share (the phase adds that ring)."""
    previous = 0.0
    for index, ring in enumerate(rings):
        if ring.share <= previous:
            raise ValueError(f"@channel.{what}.rings[{index}].share: {ring.share:g}% is not above the ring before")
        previous = ring.share
    if rings[-1].share != 100:
        raise ValueError(f"@channel.{what}.rings[{len(rings) - 1}].share: the last ring is everyone (100%)")
    shares = {ring.share for ring in rings}
    for index, phase in enumerate(spec.phases):
        if phase.points / 100 not in shares:
            field = "percent" if phase.percent is not None else "basisPoints"
            known = ", ".join(f"{r.name} {r.share:g}%" for r in rings)
            raise ValueError(f"@phases[{index}].{field}: {what} rolls out by rings: {phase.points / 100:g}% is no "
                             f"ring's share ({known})")


def rings_at(rings: list[Ring], basis_points: int) -> list[Ring]:
    """The rings a release at `basis_points` has: every ring whose share is reached."""
    return [ring for ring in rings if ring.share * 100 <= basis_points]
