"""Execution windows (Spinnaker's): a rollout's steps only start inside an allowed window and never in a
declared freeze. `next_allowed(now)` is a pure function of the time, so a workflow can wait for it
with a durable timer and a replay computes the same instant."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from models.specbase import SpecModel

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
Day = Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def _clock(value: str) -> time:
    hours, _, minutes = value.partition(":")
    if not (hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise ValueError(f"{value!r} is not a time like 09:00")
    h, m = int(hours), int(minutes)
    if (h, m) == (24, 0):
        return time.max
    if h > 23 or m > 59:
        raise ValueError(f"{value!r} is not a time of day")
    return time(h, m)


class AllowedWindow(SpecModel):
    """Days of the week and a time range on each of them (end after start; 24:00 is the end of the day)."""

    days: list[Day] = Field(default_factory=lambda: list(DAYS[:5]), min_length=1)
    start: str = Field("00:00", description="HH:MM")
    end: str = Field("24:00", description="HH:MM, after start")

    @model_validator(mode="after")
    def _check(self) -> AllowedWindow:
        for field in ("start", "end"):
            try:
                _clock(getattr(self, field))
            except ValueError as error:
                raise ValueError(f"@{field}: {error}") from None
        if _clock(self.end) <= _clock(self.start):
            raise ValueError(f"@end: {self.end} must be after start {self.start}")
        return self

    def range_on(self, day: date, zone: ZoneInfo) -> tuple[datetime, datetime] | None:
        if DAYS[day.weekday()] not in self.days:
            return None
        end = _clock(self.end)
        begin = datetime.combine(day, _clock(self.start), zone)
        finish = datetime.combine(day + timedelta(days=1), time(0), zone) if end == time.max else datetime.combine(day, end, zone)
        return begin, finish


class Freeze(SpecModel):
    """No step starts between `start` and `end` (ISO 8601; without an offset: in the windows' timezone)."""

    start: datetime
    end: datetime
    reason: str = Field("", max_length=200)


class ExecutionWindows(SpecModel):
    timezone: str = Field("UTC", description="IANA timezone, e.g. Europe/Berlin")
    allow: list[AllowedWindow] = Field(default_factory=list, max_length=20,
                                       description="allowed windows; empty: any time outside freezes")
    freezes: list[Freeze] = Field(default_factory=list, max_length=50)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r} (IANA names like Europe/Berlin)") from None
        return value

    @model_validator(mode="after")
    def _check(self) -> ExecutionWindows:
        for index, freeze in enumerate(self.freezes):
            if self._aware(freeze.end) <= self._aware(freeze.start):
                raise ValueError(f"@freezes[{index}].end: must be after start")
        return self

    def _aware(self, moment: datetime) -> datetime:
        return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(self.timezone))

    def freeze_at(self, now: datetime) -> Freeze | None:
        return next((f for f in self.freezes if self._aware(f.start) <= now < self._aware(f.end)), None)

    def next_allowed(self, now: datetime) -> tuple[datetime, str]:
        """The first instant at or after `now` inside an allowed window and outside every freeze, and why
        it is later than now ("" when now is allowed)."""
        zone = ZoneInfo(self.timezone)
        moment, why = now, ""
        for _ in range(1000):
            freeze = self.freeze_at(moment)
            if freeze is not None:
                moment, why = self._aware(freeze.end), f"freeze{': ' + freeze.reason if freeze.reason else ''}"
                continue
            opening = self._opening(moment, zone)
            if opening is None:
                raise ValueError("no allowed window in the next 8 days")
            if opening == moment:
                return moment, why
            moment, why = opening, why or "outside the allowed windows"
        raise ValueError("freezes and windows never leave an allowed instant")

    def _opening(self, moment: datetime, zone: ZoneInfo) -> datetime | None:
        """`moment` if it is inside an allowed window, else the next window's start."""
        if not self.allow:
            return moment
        local = moment.astimezone(zone).date()
        starts = []
        for offset in range(-1, 8):
            for window in self.allow:
                found = window.range_on(local + timedelta(days=offset), zone)
                if found is None:
                    continue
                begin, finish = found
                if begin <= moment < finish:
                    return moment
                if begin > moment:
                    starts.append(begin)
        return min(starts) if starts else None

    def describe(self, moment: datetime) -> str:
        return moment.astimezone(ZoneInfo(self.timezone)).strftime(f"%a %Y-%m-%d %H:%M {self.timezone}")
