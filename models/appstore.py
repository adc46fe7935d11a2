"""The App Store channel: a Release's `spec.channel.appStore` block, and its activities' wire models.

The release is a version of an app on App Store Connect with an uploaded, processed build: the
channel creates (or finds) the `appStoreVersion`, attaches the build, adds a phased release, submits it
through `reviewSubmissions`, waits for App Review durably (days are fine), releases it, and then drives
Apple's phased release: `ACTIVE`, `PAUSED` on a failed gate or a halt, `COMPLETE` early on
`promote --full`. Apple's schedule is fixed — 1, 2, 5, 10, 20, 50 % of users on days 1 to 6, everyone
on day 7; pauses up to 30 days in total — so the phases must follow it (validation names the phase
that cannot). Credentials: an API key (`$DURABLE_ROLLOUTS_APPSTORE_KEY_FILE`, `..._KEY_ID`,
`..._ISSUER_ID`), read by the activities only.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field

from models.durations import Duration, format_duration
from models.specbase import Message, SpecModel

SCHEDULE = (1, 2, 5, 10, 20, 50, 100)  # percent of users on Apple's days 1..7
MAX_PAUSE = timedelta(days=30)
Platform = Literal["IOS", "MAC_OS", "TV_OS", "VISION_OS"]
PhasedState = Literal["INACTIVE", "ACTIVE", "PAUSED", "COMPLETE"]


def _span(span: timedelta) -> str:
    return f"{span.days}d" if span == timedelta(days=span.days) else format_duration(span) if span else "0s"


def day_percent(day: int) -> int:
    """Apple's share on `day` (0: not started)."""
    return SCHEDULE[min(day, 7) - 1] if day > 0 else 0


class AppStoreChannel(SpecModel):
    """`spec.channel.appStore`: one app (its Apple ID) on one platform."""

    app_id: str = Field(pattern=r"^[0-9]{6,12}$", description="the app's Apple ID (App Store Connect → App Information)")
    platform: Platform = "IOS"
    review_poll: Duration = Field(timedelta(hours=1), description="how often App Review's verdict is read")
    review_timeout: Duration = Field(timedelta(days=14), description="how long App Review may take")

    ARTIFACT_FIELDS: ClassVar[tuple[str, ...]] = ("version", "build")

    def artifact_fields(self) -> tuple[str, ...]:
        return self.ARTIFACT_FIELDS

    def check(self, spec: Any) -> None:
        """The phases must be Apple's days: a percent of the schedule, starting at 1 %, each baking
        until Apple's next chosen day (the last one until day 7)."""
        days = []
        for index, phase in enumerate(spec.phases):
            field = "percent" if phase.percent is not None else "basisPoints"
            percent = phase.points / 100
            if percent not in SCHEDULE[:-1]:
                raise ValueError(f"@phases[{index}].{field}: Apple's phased release has no {percent:g}% day "
                                 "(1, 2, 5, 10, 20, 50% on days 1-6, everyone on day 7)")
            days.append(SCHEDULE.index(int(percent)) + 1)
        if days[0] != 1:
            raise ValueError(f"@phases[0].{'percent' if spec.phases[0].percent is not None else 'basisPoints'}: "
                             "Apple's phased release starts at 1% (day 1)")
        for index, (day, phase) in enumerate(zip(days, spec.phases, strict=True)):
            following = days[index + 1] if index + 1 < len(days) else 7
            wanted = timedelta(days=following - day)
            if phase.bake != wanted:
                nxt = f"{day_percent(following)}% (day {following})"
                raise ValueError(f"@phases[{index}].bake: Apple goes from {day_percent(day)}% (day {day}) to {nxt} "
                                 f"in {_span(wanted)}: bake {_span(wanted)}, not {_span(phase.bake)}")

    def describe(self) -> str:
        return f"appstore:{self.app_id}/{self.platform}"


# ---- activity wire models ----------------------------------------------------------------------------


class AppStoreVersionInput(Message):
    channel: AppStoreChannel
    version: str
    build: str


class AppStoreVersionState(Message):
    """The version as App Store Connect shows it, and its phased release."""

    version_id: str
    build_id: str = ""
    state: str = Field("", description="appVersionState: PREPARE_FOR_SUBMISSION, WAITING_FOR_REVIEW, IN_REVIEW, …")
    phased_release_id: str = ""
    phased_state: PhasedState = "INACTIVE"
    day: int = Field(0, description="currentDayNumber of the phased release")
    paused_seconds: int = Field(0, description="totalPauseDuration so far")

    @property
    def percent(self) -> float:
        if self.phased_state == "COMPLETE" or self.state == "READY_FOR_DISTRIBUTION" and not self.phased_release_id:
            return 100.0
        return float(day_percent(self.day)) if self.phased_state in ("ACTIVE", "PAUSED") else 0.0


class PhasedReleaseInput(Message):
    channel: AppStoreChannel
    version_id: str
    state: Literal["ACTIVE", "PAUSED", "COMPLETE"]
