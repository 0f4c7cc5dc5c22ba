"""Quiet hours (DESIGN §5.6): no message, text or email, goes out outside the practice's
sending window; one due outside it waits for the next window.

Pure functions: instants in, instants out, in the practice's time zone. Wall-clock results go
through UTC so that DST changes resolve to real instants.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

# The practice's sending window holds for texts and email alike (DESIGN §5.6).
WINDOWED_CHANNELS = ("sms", "email")


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


def practice_next_sending_time(practice, at: dt.datetime) -> dt.datetime:
    """When a message due at ``at`` can actually go out for ``practice`` (its time zone and
    sending window): ``at`` inside the window, else the window's next opening. What the
    blast page and the forecast tell staff, computed as the outbox holds messages."""
    return next_sending_time(
        at,
        start=practice.sending_window_start,
        end=practice.sending_window_end,
        tz=practice.tz,
    )
