"""Read-side queries of the outbox, scoped to one practice."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django.db.models import QuerySet

from messaging.models import MessageStatus, OutboundMessage, SandboxMessage
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


def outbox_list(
    *,
    practice: Practice,
    state: str,
    now: dt.datetime,
    day: dt.date | None = None,
    campaign_id: int | None = None,
) -> QuerySet[OutboundMessage]:
    """The practice's messages (test sends left out) in ``state``: ``sent`` on the local
    ``day`` (today by default), ``scheduled`` (queued) for ``day`` or from now to the end of
    tomorrow, ``problems`` in the last ``PROBLEM_DAYS`` days (or on ``day``). Each with its
    patient and campaign; ``campaign_id`` narrows to one campaign. Reads an index:
    (practice, sent_at) or (practice, status, scheduled_for)."""
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
        if day is None:
            start, end = now, local_day_bounds(today + dt.timedelta(days=1), tz)[1]
            # Due already but not yet claimed (quiet hours, the send allowance) counts too.
            messages = messages.filter(scheduled_for__lt=end)
        else:
            start, end = local_day_bounds(day, tz)
            messages = messages.filter(scheduled_for__gte=start, scheduled_for__lt=end)
        messages = messages.filter(status=MessageStatus.QUEUED)
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
