"""When steps fall due and when a text may go out (DESIGN §5.4, §5.6).

All functions are pure: instants in, instants out, in the practice's time zone. Wall-clock
results go through UTC so that DST changes resolve to real instants.
"""

from __future__ import annotations

import calendar
import datetime as dt
import zoneinfo

from campaigns.schedule import run_time

# The practice's sending window holds for texts and email alike (DESIGN §5.6).
WINDOWED_CHANNELS = ("sms", "email")


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` plus ``months`` months; the 31st becomes the last day of a shorter month."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return day.replace(
        year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1])
    )


def step_due(
    *,
    previous: dt.datetime,
    value: int,
    unit: str,
    schedule: dict,
    tz: zoneinfo.ZoneInfo,
) -> dt.datetime:
    """When a step is due, ``value`` ``unit`` after ``previous`` (the step before it, or the
    enrollment for step 1).

    Minutes and hours count from ``previous``; days, weeks and months land on the campaign's
    local time on that local day (a delay of 0 days is due at once).
    """
    if unit in ("minutes", "hours"):
        # Elapsed time, in UTC: Python adds to an aware datetime on its wall clock, which
        # would be an hour off across a DST change.
        elapsed = dt.timedelta(**{unit: value})
        return (previous.astimezone(dt.UTC) + elapsed).astimezone(tz)
    if value == 0:
        return previous
    day = previous.astimezone(tz).date()
    if unit == "days":
        day += dt.timedelta(days=value)
    elif unit == "weeks":
        day += dt.timedelta(weeks=value)
    elif unit == "months":
        day = add_months(day, value)
    else:
        raise ValueError(f"Unknown delay unit {unit!r}")
    return run_time(schedule, day, tz)


def window_bounds(
    day: dt.date, start: dt.time, end: dt.time, tz: zoneinfo.ZoneInfo
) -> tuple[dt.datetime, dt.datetime]:
    """The sending window of local date ``day`` as instants."""
    return (
        dt.datetime.combine(day, start, tzinfo=tz).astimezone(dt.UTC).astimezone(tz),
        dt.datetime.combine(day, end, tzinfo=tz).astimezone(dt.UTC).astimezone(tz),
    )


def next_sending_time(
    at: dt.datetime, *, start: dt.time, end: dt.time, tz: zoneinfo.ZoneInfo
) -> dt.datetime:
    """``at`` if it is inside the sending window, else the start of the next window."""
    day = at.astimezone(tz).date()
    opens, closes = window_bounds(day, start, end, tz)
    if at < opens:
        return opens
    if at < closes:
        return at
    return window_bounds(day + dt.timedelta(days=1), start, end, tz)[0]


def end_of_local_day(at: dt.datetime, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    """The instant the local day of ``at`` ends (the next local midnight)."""
    day = at.astimezone(tz).date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(0, 0), tzinfo=tz).astimezone(dt.UTC).astimezone(tz)
