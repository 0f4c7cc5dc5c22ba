"""Step due times and the end of a local day, including DST change days."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from campaigns.timing import add_months, end_of_local_day, step_due

NY = ZoneInfo("America/New_York")
DAILY_10 = {"frequency": "daily", "time": "10:00"}


def ny(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=NY)


def elapsed(start: dt.datetime, end: dt.datetime) -> dt.timedelta:
    """Real time between two instants (same-zone subtraction in Python is wall-clock)."""
    return end.astimezone(dt.UTC) - start.astimezone(dt.UTC)


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (dt.date(2026, 1, 31), 1, dt.date(2026, 2, 28)),
        (dt.date(2028, 1, 31), 1, dt.date(2028, 2, 29)),
        (dt.date(2026, 11, 30), 3, dt.date(2027, 2, 28)),
        (dt.date(2026, 12, 15), 1, dt.date(2027, 1, 15)),
    ],
)
def test_add_months_clamps_to_month_end(day, months, expected):
    assert add_months(day, months) == expected


def test_minutes_and_hours_count_from_the_previous_step():
    previous = ny(2026, 3, 7, 23, 30)
    assert step_due(previous=previous, value=90, unit="minutes", schedule=DAILY_10, tz=NY) == ny(
        2026, 3, 8, 1, 0
    )
    # Across the spring-forward gap: 3 real hours after 23:30 EST is 03:30 EDT.
    assert step_due(previous=previous, value=3, unit="hours", schedule=DAILY_10, tz=NY) == ny(
        2026, 3, 8, 3, 30
    )


def test_days_weeks_and_months_land_on_the_campaign_time():
    previous = ny(2026, 1, 31, 16, 45)
    due = step_due(previous=previous, value=3, unit="days", schedule=DAILY_10, tz=NY)
    assert due == ny(2026, 2, 3, 10, 0)
    assert step_due(previous=previous, value=1, unit="weeks", schedule=DAILY_10, tz=NY) == ny(
        2026, 2, 7, 10, 0
    )
    assert step_due(previous=previous, value=1, unit="months", schedule=DAILY_10, tz=NY) == ny(
        2026, 2, 28, 10, 0
    )
    assert step_due(previous=previous, value=0, unit="days", schedule=DAILY_10, tz=NY) == previous


def test_a_day_delay_across_dst_keeps_the_local_time():
    previous = ny(2026, 3, 7, 10, 0)  # EST
    due = step_due(previous=previous, value=1, unit="days", schedule=DAILY_10, tz=NY)
    assert due == ny(2026, 3, 8, 10, 0)  # EDT: 23 hours later, same wall time
    assert elapsed(previous, due) == dt.timedelta(hours=23)


def test_end_of_local_day_on_dst_days():
    assert end_of_local_day(ny(2026, 3, 8, 12, 0), NY) == ny(2026, 3, 9, 0, 0)
    assert end_of_local_day(ny(2026, 11, 1, 12, 0), NY) == ny(2026, 11, 2, 0, 0)
    # The fall-back day is 25 hours long.
    day_start = ny(2026, 11, 1, 0, 0)
    assert elapsed(day_start, end_of_local_day(day_start, NY)) == dt.timedelta(hours=25)
