"""The sending window (quiet hours), including DST change days."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from messaging.outbox.window import next_sending_time

NY = ZoneInfo("America/New_York")
EIGHT, NINE_PM = dt.time(8, 0), dt.time(21, 0)


def ny(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=NY)


def elapsed(start: dt.datetime, end: dt.datetime) -> dt.timedelta:
    """Real time between two instants (same-zone subtraction in Python is wall-clock)."""
    return end.astimezone(dt.UTC) - start.astimezone(dt.UTC)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (ny(2026, 6, 1, 7, 59), ny(2026, 6, 1, 8, 0)),
        (ny(2026, 6, 1, 8, 0), ny(2026, 6, 1, 8, 0)),
        (ny(2026, 6, 1, 20, 59), ny(2026, 6, 1, 20, 59)),
        (ny(2026, 6, 1, 21, 0), ny(2026, 6, 2, 8, 0)),
        (ny(2026, 6, 1, 23, 30), ny(2026, 6, 2, 8, 0)),
    ],
)
def test_next_sending_time_waits_for_the_window(at, expected):
    assert next_sending_time(at, start=EIGHT, end=NINE_PM, tz=NY) == expected


def test_sending_window_across_dst_changes():
    # Saturday 21:30 EST before spring forward: the next window opens at 08:00 EDT on Sunday.
    at = ny(2026, 3, 7, 21, 30)
    opens = next_sending_time(at, start=EIGHT, end=NINE_PM, tz=NY)
    assert opens == ny(2026, 3, 8, 8, 0)
    assert elapsed(at, opens) == dt.timedelta(hours=9, minutes=30)  # an hour less than usual
    # Fall back: 01:30 happens twice; both are outside the window.
    first = dt.datetime(2026, 11, 1, 5, 30, tzinfo=dt.UTC)  # 01:30 EDT
    second = dt.datetime(2026, 11, 1, 6, 30, tzinfo=dt.UTC)  # 01:30 EST
    for at in (first, second):
        assert next_sending_time(at, start=EIGHT, end=NINE_PM, tz=NY) == ny(2026, 11, 1, 8, 0)


def test_narrower_practice_window():
    at = ny(2026, 6, 1, 8, 30)
    assert next_sending_time(at, start=dt.time(9), end=dt.time(17), tz=NY) == ny(2026, 6, 1, 9)
    assert next_sending_time(ny(2026, 6, 1, 17), start=dt.time(9), end=dt.time(17), tz=NY) == ny(
        2026, 6, 2, 9
    )
