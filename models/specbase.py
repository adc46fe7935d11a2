"""What every part of the spec is built from: camelCase models that reject unknown keys, DNS names,
and one-of blocks that name the key they do not know."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints
from pydantic.alias_generators import to_camel

DnsLabel = Annotated[
    str,
    StringConstraints(max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
]
# 253 (a DNS subdomain) less the "-preview" suffix the blue-green preview Deployment adds.
DnsSubdomain = Annotated[
    str,
    StringConstraints(max_length=245, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"),
]


class SpecModel(BaseModel):
    """Spec documents use camelCase keys and reject keys they do not know."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


def exactly_one(data: Any, known: tuple[str, ...], what: str) -> Any:
    """For one-of blocks (`strategy`, `trafficRouting`): name the unknown key instead of a generic error."""
    if not isinstance(data, dict):
        return data
    unknown = [key for key in data if key not in known]
    if unknown:
        raise ValueError(f"unknown {what} {unknown[0]!r} (known: {', '.join(known)})")
    given = [key for key in known if data.get(key) is not None]
    if len(given) != 1:
        raise ValueError(f"exactly one {what} is needed (one of: {', '.join(known)}), got {len(given)}")
    return data
