"""Execution windows as a pure function of the time (the workflow waits for `next_allowed` with a
durable timer; test_approvals runs that across a weekend on the test server)."""

from datetime import UTC, datetime, timezone
from zoneinfo import ZoneInfo

from models.schedule import ExecutionWindows

BERLIN = ZoneInfo("Europe/Berlin")
OFFICE = ExecutionWindows.model_validate({"timezone": "Europe/Berlin", "allow": [{"start": "09:00", "end": "17:00"}]})


def test_inside_a_window_is_now():
    tuesday_noon = datetime(2026, 11, 24, 12, 0, tzinfo=BERLIN)
    assert OFFICE.next_allowed(tuesday_noon) == (tuesday_noon, "")


def test_friday_evening_waits_for_monday_morning_across_a_dst_change():
    friday_evening = datetime(2026, 3, 27, 18, 0, tzinfo=BERLIN)  # CET; clocks go forward on Sunday the 29th
    at, why = OFFICE.next_allowed(friday_evening)
    assert at == datetime(2026, 3, 30, 9, 0, tzinfo=BERLIN) and why == "outside the allowed windows"
    assert at.astimezone(UTC).hour == 7  # 09:00 CEST


def test_a_freeze_pushes_past_its_end_then_into_the_next_window():
    windows = OFFICE.model_copy(update={"freezes": ExecutionWindows.model_validate({"freezes": [
        {"start": "2026-12-23T00:00:00", "end": "2026-12-28T10:30:00", "reason": "holidays"}]}).freezes})
    at, why = windows.next_allowed(datetime(2026, 12, 23, 11, 0, tzinfo=BERLIN))
    assert at == datetime(2026, 12, 28, 10, 30, tzinfo=BERLIN) and why == "freeze: holidays"
    late = windows.model_copy(update={"freezes": ExecutionWindows.model_validate({"freezes": [
        {"start": "2026-12-23T00:00:00", "end": "2026-12-28T18:00:00"}]}).freezes})
    assert late.next_allowed(datetime(2026, 12, 23, 11, 0, tzinfo=BERLIN))[0] == datetime(2026, 12, 29, 9, 0, tzinfo=BERLIN)


def test_weekend_only_window_and_end_of_day():
    weekend = ExecutionWindows.model_validate({"timezone": "UTC", "allow": [{"days": ["Sat", "Sun"], "end": "24:00"}]})
    monday = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    assert weekend.next_allowed(monday)[0] == datetime(2026, 11, 28, 0, 0, tzinfo=UTC)
    sunday_late = datetime(2026, 11, 22, 23, 59, tzinfo=UTC)
    assert weekend.next_allowed(sunday_late)[0] == sunday_late
