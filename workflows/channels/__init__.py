"""How a staged release talks to its channel: one small Protocol, one module per channel.

`StagedRelease` (workflows/release.py) runs the phases; a channel turns "this exposure now" into its
target's terms (an updater's signed rollout state, a flag's fractional share) and knows what going back
means for it. A new channel (a store track, an MDM ring) is one more module here and one entry below.
"""

from __future__ import annotations

from typing import Protocol

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.release import ReleaseSpecBody
    from workflows.context import Control


class ReleaseChannel(Protocol):
    unit: str  # what the share counts (models.status.Exposure.unit)
    source: str  # where the share the channel reports comes from

    def __init__(self, control: Control, spec: ReleaseSpecBody) -> None: ...

    async def prepare(self) -> None:
        """Before the first phase: what is released is in place (uploaded); what runs now is known."""

    async def expose(self, basis_points: int, halted: bool) -> float:
        """The release's share is `basis_points` of 10,000 (`halted`: no new takers); returns the share
        in percent the channel now reports."""

    async def roll_back(self, last_good: int) -> str:
        """Go back (the previous release, or the last good share); says what it did."""

    async def stop(self) -> str:
        """An abort: no new takers, nothing undone; says what it did."""

    def rolled_back_share(self, last_good: int) -> float:
        """The share (percent) that runs the release once `roll_back` is done."""

    def left_behind(self) -> str:
        """What of the release stays in the channel when it ends before publishing ("" when nothing does)."""


from workflows.channels.app_store import AppStoreRelease  # noqa: E402 - the channels implement the Protocol above
from workflows.channels.flag import FlagRelease  # noqa: E402
from workflows.channels.google_play import PlayRelease  # noqa: E402
from workflows.channels.intune import IntuneRelease  # noqa: E402
from workflows.channels.mdm import MdmRelease  # noqa: E402
from workflows.channels.microsoft_store import MicrosoftStoreRelease  # noqa: E402
from workflows.channels.updater import UpdaterRelease  # noqa: E402

CHANNELS: dict[str, type[ReleaseChannel]] = {"updater": UpdaterRelease, "flag": FlagRelease, "googlePlay": PlayRelease,
                                               "appStore": AppStoreRelease, "microsoftStore": MicrosoftStoreRelease,
                                               "intune": IntuneRelease, "mdm": MdmRelease}


def channel_for(kind: str) -> type[ReleaseChannel]:
    return CHANNELS[kind]
