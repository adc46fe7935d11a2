"""Durations as release engineers write them (`30s`, `5m`, `1h30m`, `7d`, or seconds as a number)."""

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|d|h|m|s))+$")


MAX_SECONDS = 366 * 86400  # nothing in a rollout waits longer than a year


def _seconds(seconds: float, shown: Any) -> timedelta:
    if not 0 <= seconds <= MAX_SECONDS:  # negative, NaN, infinity, or longer than any rollout waits
        raise ValueError(f"duration {shown!r} is not between 0 and 366 days")
    return timedelta(seconds=seconds)


def _parse(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like 30s, 5m, 1h30m")
    if isinstance(value, (int, float)):
        return _seconds(value, value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("-"):
            raise ValueError(f"duration {value!r} must not be negative")
        if _WHOLE.match(text):
            return _seconds(sum(float(n) * _UNITS[u] for n, u in _PART.findall(text)), value)
        if text.startswith("P"):  # ISO 8601, as the data converter writes it
            return text
        raise ValueError(f"duration {value!r} is not like 30s, 5m, 1h30m")
    return value


def _bounded(value: timedelta) -> timedelta:
    """Also for ISO 8601 strings (P3D), which pydantic parses itself."""
    if value < timedelta(0):
        raise ValueError("duration must not be negative")
    if value > timedelta(seconds=MAX_SECONDS):
        raise ValueError(f"duration {format_duration(value)} is longer than 366 days")
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse), AfterValidator(_bounded)]


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")
    return text or "0s"
