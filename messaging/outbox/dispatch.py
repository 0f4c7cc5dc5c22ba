"""Claiming due messages for sending (step 4 of a tick): expire stale messages, recover
stuck ones, and claim due ones — paced per practice, so one practice's blast never delays
another's reminders.

The pace is an allowance per practice per wall-clock minute (UTC),
``SEND_RATE_PER_PRACTICE_PER_MINUTE``, kept in the practice's ``SendAllowance`` row: a claim
locks that row, takes at most what is left of the minute's allowance, and adds what it took,
so ticks running at once (beat's, a slow one, ``manage.py tick``) or one after another in the
same minute share one allowance. The wall-clock minute rather than a sliding 60 seconds:
beat ticks once a minute with some jitter, and a sliding window would still hold the
previous tick's claims when the next tick comes 59.9 s later, halving the practice's pace; a
minute boundary lets each tick of the schedule take a full allowance. A tick whose ``now``
is behind the newest minute seen (a late clock) counts against that newest minute.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Collection

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet

from messaging.models import MessageEvent, MessageStatus, OutboundMessage, SendAllowance
from messaging.outbox.status import messages_transition
from messaging.outbox.window import WINDOWED_CHANNELS, next_sending_time

# How long a claimed message may stay "sending" before the claim is considered lost.
CLAIM_SECONDS = 300


def messages_dispatch(
    *,
    now: dt.datetime,
    on_claimed: Callable[[list[int]], None] | None = None,
    practice_ids: Collection[int] | None = None,
) -> list[int]:
    """Claim the messages due at ``now``; return their ids (status ``sending``).

    Each practice gets at most ``SEND_RATE_PER_PRACTICE_PER_MINUTE`` messages per wall-clock
    minute, whatever the number of ticks in it (its sender's pace), taken oldest first; the
    rest stay queued for the next minute. Practices are served in turn, each with its own
    allowance, so a big blast in one practice never starves another. ``on_claimed`` (the
    send queue) gets each practice's ids as soon as its claim has committed, so sending
    starts while the next practices are claimed. ``practice_ids``: only these practices'
    messages (one tick group); None: every practice's.
    """
    outbox = OutboundMessage.objects.all()
    if practice_ids is not None:
        outbox = outbox.filter(practice_id__in=practice_ids)
    _expire(outbox, now)
    _recover(outbox, now)
    practices = list(
        outbox.filter(status=MessageStatus.QUEUED, scheduled_for__lte=now)
        .order_by()
        .values_list("practice_id", flat=True)
        .distinct()
    )
    claimed: list[int] = []
    for practice_id in practices:
        ids = _claim(practice_id, now)
        claimed += ids
        if on_claimed is not None and ids:
            on_claimed(ids)
    return claimed


def _expire(outbox: QuerySet[OutboundMessage], now: dt.datetime) -> None:
    messages_transition(
        messages=outbox.filter(status=MessageStatus.QUEUED, expires_at__lte=now),
        status=MessageStatus.EXPIRED,
        reason="not sent on its day",
        at=now,
        source="engine",
    )


def _recover(outbox: QuerySet[OutboundMessage], now: dt.datetime) -> None:
    """Claims that ran out: back to the queue if the provider was never called, else
    ``unknown`` (the provider may have accepted it; reconciliation finds out)."""
    stuck = outbox.filter(status=MessageStatus.SENDING, claimed_until__lt=now)
    messages_transition(
        messages=stuck.filter(provider_called_at__isnull=True),
        status=MessageStatus.QUEUED,
        reason="claim expired before sending",
        at=now,
        source="engine",
    )
    messages_transition(
        messages=stuck.filter(provider_called_at__isnull=False),
        status=MessageStatus.UNKNOWN,
        reason="no answer from the provider",
        at=now,
        source="engine",
    )


def _allowance_lock(practice_id: int, now: dt.datetime) -> tuple[SendAllowance, int]:
    """Lock the practice's send allowance (a concurrent claim of the same practice waits for
    this transaction, then sees what it took); return it, moved on to ``now``'s minute, and
    how many messages may still be claimed in that minute."""
    minute = now.astimezone(dt.UTC).replace(second=0, microsecond=0)
    allowance, _ = SendAllowance.objects.select_for_update().get_or_create(
        practice_id=practice_id, defaults={"minute": minute}
    )
    if allowance.minute < minute:
        allowance.minute, allowance.claimed = minute, 0
    return allowance, max(0, settings.SEND_RATE_PER_PRACTICE_PER_MINUTE - allowance.claimed)


# Durable: a claim commits before its ids go to the send queue, so it is never nested.
@transaction.atomic(durable=True)
def _claim(practice_id: int, now: dt.datetime) -> list[int]:
    allowance, left = _allowance_lock(practice_id, now)
    if not left:
        return []  # the practice's minute is used up: its messages wait for the next one
    rows = list(
        # of=self: lock the messages only, not the practice row joined for its window (that
        # would make a concurrent tick skip every message of the practice).
        OutboundMessage.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(practice_id=practice_id, status=MessageStatus.QUEUED, scheduled_for__lte=now)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .select_related("practice")
        .order_by("scheduled_for", "id")[:left]
    )
    claimed, waiting = [], []
    opens = None  # the practice's sending window, the same for all its messages at ``now``
    for message in rows:
        if message.channel in WINDOWED_CHANNELS:
            if opens is None:
                practice = message.practice
                opens = next_sending_time(
                    now,
                    start=practice.sending_window_start,
                    end=practice.sending_window_end,
                    tz=practice.tz,
                )
            if opens > now:
                # Quiet hours: wait for the window (the expiry still applies).
                message.scheduled_for = opens
                waiting.append(message)
                continue
        message.status = MessageStatus.SENDING
        message.claimed_until = now + dt.timedelta(seconds=CLAIM_SECONDS)
        message.attempts += 1
        claimed.append(message)
    # Set-wise (Django's bulk_update builds a CASE per row and field, slower than the claim):
    # the waiting texts of a practice all wait for the same window, and every claimed
    # message gets the same status and claim.
    waits: dict[dt.datetime, list[int]] = defaultdict(list)
    for message in waiting:
        waits[message.scheduled_for].append(message.pk)
    for opens, ids in waits.items():
        OutboundMessage.objects.filter(pk__in=ids).update(scheduled_for=opens)
    if claimed:
        OutboundMessage.objects.filter(pk__in=[m.pk for m in claimed]).update(
            status=MessageStatus.SENDING,
            claimed_until=now + dt.timedelta(seconds=CLAIM_SECONDS),
            attempts=F("attempts") + 1,
            passed_check_at=None,
        )
        SendAllowance.objects.filter(pk=practice_id).update(
            minute=allowance.minute, claimed=allowance.claimed + len(claimed)
        )
    MessageEvent.objects.bulk_create(
        MessageEvent(
            practice_id=m.practice_id,
            message=m,
            status=MessageStatus.SENDING,
            at=now,
            source="engine",
        )
        for m in claimed
    )
    return [m.pk for m in claimed]
