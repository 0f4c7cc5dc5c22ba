"""Read-side queries of the outbox, scoped to one practice."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django.db.models import QuerySet

from messaging.models import MessageStatus, OutboundMessage, SandboxMessage
from messaging.outbox.window import window_bounds
from patients.models import Patient
from trackstat.models import Practice


def patient_messages(*, practice: Practice, patient: Patient) -> QuerySet[OutboundMessage]:
    """A patient's messages, newest first, with their campaign."""
    return (
        OutboundMessage.objects.filter(practice=practice, patient=patient)
        .select_related("campaign")
        .order_by("-scheduled_for", "-id")
    )


def sandbox_messages(*, practice: Practice) -> QuerySet[SandboxMessage]:
    return SandboxMessage.objects.filter(practice=practice).order_by("-created_at", "-id")


# --- The outbox list behind the Today page's numbers ---------------------------------------------

# Messages that did not reach the patient for a reason someone should look at (a wrong
# number, a full mailbox, a carrier block), as opposed to skipped or canceled by a rule.
PROBLEM_STATUSES = [
    MessageStatus.FAILED,
    MessageStatus.UNDELIVERED,
    MessageStatus.BOUNCED,
    MessageStatus.DROPPED,
]
# How far back the Today page and the list look for problems.
PROBLEM_DAYS = 7
# The list's states and their headings.
OUTBOX_STATES = {
    "sent": "Sent",
    "scheduled": "Scheduled",
    "problems": "Failed or bounced",
}


def local_day_bounds(day: dt.date, tz: zoneinfo.ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """The instants a practice-local day begins and ends (DST-safe)."""
    start = dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(dt.UTC)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=tz).astimezone(dt.UTC)
    return start, end


def sending_day_bounds(
    day: dt.date, *, practice: Practice, today: dt.date
) -> tuple[dt.datetime | None, dt.datetime]:
    """Which due times make a queued message go out on the local ``day``: from the close of
    the day before's sending window to the close of this day's (quiet hours hold one due
    after hours for the next morning). Today's start is open: what is overdue and still
    queued goes at the next chance."""
    start, end = practice.sending_window_start, practice.sending_window_end
    close = window_bounds(day, start, end, practice.tz)[1]
    if day <= today:
        return None, close
    return window_bounds(day - dt.timedelta(days=1), start, end, practice.tz)[1], close


def outbox_list(
    *,
    practice: Practice,
    state: str,
    now: dt.datetime,
    day: dt.date | None = None,
    campaign_id: int | None = None,
) -> QuerySet[OutboundMessage]:
    """The practice's messages (test sends left out) in ``state``: ``sent`` on the local
    ``day`` (today by default), ``scheduled`` (queued) to go out on ``day``
    (``sending_day_bounds``) or by the end of tomorrow, ``problems`` in the last
    ``PROBLEM_DAYS`` days (or on ``day``). Each with its patient and campaign;
    ``campaign_id`` narrows to one campaign. Reads an index: (practice, sent_at) or
    (practice, status, scheduled_for)."""
    tz = practice.tz
    today = now.astimezone(tz).date()
    messages = OutboundMessage.objects.filter(practice=practice, is_test=False)
    if state == "sent":
        start, end = local_day_bounds(day or today, tz)
        messages = messages.filter(sent_at__gte=start, sent_at__lt=end).exclude(
            status__in=[MessageStatus.QUEUED, MessageStatus.SENDING]
        )
        order = ("-sent_at", "-id")
    elif state == "scheduled":
        start, end = sending_day_bounds(day or today, practice=practice, today=today)
        if day is None:  # from now to the end of tomorrow
            end = sending_day_bounds(today + dt.timedelta(days=1), practice=practice, today=today)[
                1
            ]
        messages = messages.filter(status=MessageStatus.QUEUED, scheduled_for__lt=end)
        if start is not None:
            messages = messages.filter(scheduled_for__gte=start)
        order = ("scheduled_for", "id")
    elif state == "problems":
        if day is None:
            start, end = now - dt.timedelta(days=PROBLEM_DAYS), now + dt.timedelta(days=1)
        else:
            start, end = local_day_bounds(day, tz)
        messages = messages.filter(
            status__in=PROBLEM_STATUSES, scheduled_for__gte=start, scheduled_for__lt=end
        )
        order = ("-scheduled_for", "-id")
    else:
        raise ValueError(f"Unknown state {state!r}")
    if campaign_id is not None:
        messages = messages.filter(campaign_id=campaign_id)
    return messages.select_related("patient", "campaign").order_by(*order)
