"""A campaign's schedule (DESIGN §5.3): on which local days it runs, and at what instant."""

from __future__ import annotations

import calendar
import datetime as dt
import zoneinfo

from campaigns.language.spec import WEEKDAYS


def is_due_on(schedule: dict, day: dt.date) -> bool:
    """Whether a scheduled campaign runs on the local date ``day``.

    Monthly on day 29, 30 or 31 runs on the last day of a shorter month.
    """
    frequency = schedule["frequency"]
    if frequency == "daily":
        return True
    if frequency == "weekly":
        return WEEKDAYS[day.weekday()] in schedule["weekdays"]
    last = calendar.monthrange(day.year, day.month)[1]
    return day.day == min(schedule["day"], last)


def run_time(schedule: dict, day: dt.date, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    """The instant of the run on local date ``day``.

    A time that does not exist that day (skipped by a DST change) runs at the first valid
    instant after it; a repeated time runs at its first occurrence.
    """
    hour, minute = map(int, schedule["time"].split(":"))
    local = dt.datetime.combine(day, dt.time(hour, minute), tzinfo=tz)
    # Round-trip through UTC: a wall time in a DST gap maps forward to a real instant.
    return local.astimezone(dt.UTC).astimezone(tz)


def due_day(
    schedule: dict, *, enabled_at: dt.datetime | None, tz: zoneinfo.ZoneInfo, now: dt.datetime
) -> dt.date | None:
    """The local date of a scheduled campaign's run due at ``now``, if one is: today when it
    is due on today, its time has come and it was not enabled after that time (DESIGN §5.3).
    Whether it already ran today is the caller's to check (``CampaignRun``)."""
    today = now.astimezone(tz).date()
    if not is_due_on(schedule, today):
        return None
    due = run_time(schedule, today, tz)
    if due > now or (enabled_at and enabled_at > due):
        return None
    return today
