"""A campaign's schedule (DESIGN §5.3): the local days it is due, and the instant of each run,
including month ends and the DST change days of America/New_York."""

from __future__ import annotations

import datetime as dt

import pytest

from campaigns.schedule import is_due_on, run_time
from tests.campaigns.builders import NY, utc


def due_days(schedule: dict, first: dt.date, last: dt.date) -> list[dt.date]:
    days = []
    day = first
    while day <= last:
        if is_due_on(schedule, day):
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def monthly(day: int) -> dict:
    return {"frequency": "monthly", "day": day, "time": "10:00"}


def test_daily_is_due_every_day():
    daily = {"frequency": "daily", "time": "10:00"}
    first, last = dt.date(2027, 12, 25), dt.date(2028, 3, 5)
    assert len(due_days(daily, first, last)) == (last - first).days + 1


def test_weekly_is_due_on_its_weekdays_only():
    weekly = {"frequency": "weekly", "weekdays": ["mon", "thu"], "time": "10:00"}
    days = due_days(weekly, dt.date(2026, 6, 14), dt.date(2026, 6, 28))
    assert days == [
        dt.date(2026, 6, 15),
        dt.date(2026, 6, 18),
        dt.date(2026, 6, 22),
        dt.date(2026, 6, 25),
    ]
    assert {day.strftime("%a") for day in days} == {"Mon", "Thu"}
    weekend = {"frequency": "weekly", "weekdays": ["sat", "sun"], "time": "10:00"}
    assert due_days(weekend, dt.date(2026, 6, 15), dt.date(2026, 6, 21)) == [
        dt.date(2026, 6, 20),
        dt.date(2026, 6, 21),
    ]


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (
            31,
            [
                dt.date(2026, 1, 31),
                dt.date(2026, 2, 28),  # the last day of a shorter month counts
                dt.date(2026, 3, 31),
                dt.date(2026, 4, 30),
                dt.date(2026, 5, 31),
            ],
        ),
        (
            30,
            [
                dt.date(2026, 1, 30),
                dt.date(2026, 2, 28),
                dt.date(2026, 3, 30),
                dt.date(2026, 4, 30),
                dt.date(2026, 5, 30),
            ],
        ),
        (
            29,
            [
                dt.date(2026, 1, 29),
                dt.date(2026, 2, 28),
                dt.date(2026, 3, 29),
                dt.date(2026, 4, 29),
                dt.date(2026, 5, 29),
            ],
        ),
        (
            28,
            [
                dt.date(2026, 1, 28),
                dt.date(2026, 2, 28),
                dt.date(2026, 3, 28),
                dt.date(2026, 4, 28),
                dt.date(2026, 5, 28),
            ],
        ),
        (1, [dt.date(2026, month, 1) for month in range(1, 6)]),
    ],
)
def test_monthly_runs_once_a_month_on_its_day_or_the_last_day(day, expected):
    assert due_days(monthly(day), dt.date(2026, 1, 1), dt.date(2026, 5, 31)) == expected


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (31, [dt.date(2028, 1, 31), dt.date(2028, 2, 29), dt.date(2028, 3, 31)]),
        (30, [dt.date(2028, 1, 30), dt.date(2028, 2, 29), dt.date(2028, 3, 30)]),
        (29, [dt.date(2028, 1, 29), dt.date(2028, 2, 29), dt.date(2028, 3, 29)]),
        (28, [dt.date(2028, 1, 28), dt.date(2028, 2, 28), dt.date(2028, 3, 28)]),
    ],
)
def test_monthly_in_a_leap_february(day, expected):
    assert due_days(monthly(day), dt.date(2028, 1, 1), dt.date(2028, 3, 31)) == expected


def test_monthly_31_at_the_end_of_30_day_months():
    assert is_due_on(monthly(31), dt.date(2026, 4, 30))
    assert not is_due_on(monthly(31), dt.date(2026, 4, 29))
    assert not is_due_on(monthly(31), dt.date(2026, 5, 1))
    assert is_due_on(monthly(31), dt.date(2026, 2, 28))
    assert is_due_on(monthly(31), dt.date(2028, 2, 29))
    assert not is_due_on(monthly(31), dt.date(2028, 2, 28))
    assert is_due_on(monthly(30), dt.date(2026, 2, 28))
    assert not is_due_on(monthly(30), dt.date(2026, 3, 31))


# --- run_time ----------------------------------------------------------------------------------


def run(time: str, day: dt.date) -> dt.datetime:
    return run_time({"frequency": "daily", "time": time}, day, NY)


@pytest.mark.parametrize(
    ("time", "day", "instant"),
    [
        ("10:00", dt.date(2026, 1, 15), utc(2026, 1, 15, 15)),  # EST, UTC-5
        ("10:00", dt.date(2026, 6, 15), utc(2026, 6, 15, 14)),  # EDT, UTC-4
        ("00:00", dt.date(2026, 6, 15), utc(2026, 6, 15, 4)),
        ("23:59", dt.date(2026, 6, 15), utc(2026, 6, 16, 3, 59)),
        # Spring forward, 8 March 2026: 02:00 EST becomes 03:00 EDT.
        ("00:00", dt.date(2026, 3, 8), utc(2026, 3, 8, 5)),
        ("01:59", dt.date(2026, 3, 8), utc(2026, 3, 8, 6, 59)),
        ("03:00", dt.date(2026, 3, 8), utc(2026, 3, 8, 7)),
        ("10:00", dt.date(2026, 3, 8), utc(2026, 3, 8, 14)),
        ("23:59", dt.date(2026, 3, 8), utc(2026, 3, 9, 3, 59)),
        # Fall back, 1 November 2026: 02:00 EDT becomes 01:00 EST.
        ("00:30", dt.date(2026, 11, 1), utc(2026, 11, 1, 4, 30)),
        ("02:00", dt.date(2026, 11, 1), utc(2026, 11, 1, 7)),
        ("10:00", dt.date(2026, 11, 1), utc(2026, 11, 1, 15)),
        ("23:59", dt.date(2026, 11, 1), utc(2026, 11, 2, 4, 59)),
    ],
)
def test_run_time_is_the_local_time_on_that_day(time, day, instant):
    result = run(time, day)
    assert result.astimezone(dt.UTC) == instant
    assert result.astimezone(NY).date() == day


def test_run_time_in_the_spring_forward_gap_is_a_real_instant_after_it():
    # 02:30 does not exist on 8 March 2026 in New York: the run is at 03:30 EDT.
    result = run("02:30", dt.date(2026, 3, 8))
    assert result.astimezone(dt.UTC) == utc(2026, 3, 8, 7, 30)
    local = result.astimezone(NY)
    assert (local.hour, local.minute) == (3, 30)
    assert local.utcoffset() == dt.timedelta(hours=-4)
    assert result > run("01:59", dt.date(2026, 3, 8))
    assert result <= run("03:30", dt.date(2026, 3, 8))
    # 02:00 itself does not exist either: the first instant of EDT.
    assert run("02:00", dt.date(2026, 3, 8)).astimezone(dt.UTC) == utc(2026, 3, 8, 7)


def test_run_time_in_the_fall_back_hour_is_the_first_of_the_two():
    # 01:30 happens twice on 1 November 2026 in New York: first at 05:30 UTC (EDT).
    result = run("01:30", dt.date(2026, 11, 1))
    assert result.astimezone(dt.UTC) == utc(2026, 11, 1, 5, 30)
    assert result.utcoffset() == dt.timedelta(hours=-4)
    assert run("01:00", dt.date(2026, 11, 1)).astimezone(dt.UTC) == utc(2026, 11, 1, 5)
    assert run("01:59", dt.date(2026, 11, 1)).astimezone(dt.UTC) == utc(2026, 11, 1, 5, 59)


def test_run_time_of_a_monthly_schedule_on_a_short_month():
    schedule = monthly(31)
    day = dt.date(2026, 4, 30)
    assert is_due_on(schedule, day)
    assert run_time(schedule, day, NY).astimezone(dt.UTC) == utc(2026, 4, 30, 14)
