"""When steps fall due (DESIGN §5.4) and when a continuous trigger's message expires (§5.6);
when a message may go out (quiet hours) is the outbox's (``messaging.outbox.window``).

All functions are pure: instants in, instants out, in the practice's time zone. Wall-clock
results go through UTC so that DST changes resolve to real instants.
"""

from __future__ import annotations

import calendar
import datetime as dt
import zoneinfo

from campaigns.schedule import run_time


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


def end_of_local_day(at: dt.datetime, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    """The instant the local day of ``at`` ends (the next local midnight)."""
    day = at.astimezone(tz).date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(0, 0), tzinfo=tz).astimezone(dt.UTC).astimezone(tz)
