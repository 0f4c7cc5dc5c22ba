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
import zoneinfo
from collections import defaultdict
from collections.abc import Callable, Collection

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet

from messaging.models import MessageStatus, OutboundMessage, SendAllowance
from messaging.outbox.status import message_events_insert, messages_transition
from messaging.outbox.window import WINDOWED_CHANNELS, next_sending_time
from trackstat.models import Practice

# How long a claimed message may stay "sending" before the claim is considered lost.
CLAIM_SECONDS = 300


# Practices claimed in one transaction: their allowances are locked together (in practice
# order, so ticks at once never deadlock), then one statement takes every practice's due
# messages. A tick of hundreds of practices pays a few statements per batch, not per practice.
CLAIM_PRACTICES_PER_TRANSACTION = 50


def messages_dispatch(
    *,
    now: dt.datetime,
    on_claimed: Callable[[list[int]], None] | None = None,
    practice_ids: Collection[int] | None = None,
) -> list[int]:
    """Claim the messages due at ``now``; return their ids (status ``sending``).

    Each practice gets at most ``SEND_RATE_PER_PRACTICE_PER_MINUTE`` messages per wall-clock
    minute, whatever the number of ticks in it (its sender's pace), taken oldest first; the
    rest stay queued for the next minute. Every practice has its own allowance, so a big
    blast in one practice never starves another. Practices are claimed in batches
    (``CLAIM_PRACTICES_PER_TRANSACTION``), each batch one transaction; ``on_claimed`` (the
    send queue) gets each practice's ids as soon as its batch has committed, so sending
    starts while the next batches are claimed. ``practice_ids``: only these practices'
    messages (one tick group); None: every practice's.
    """
    outbox = OutboundMessage.objects.all()
    if practice_ids is not None:
        outbox = outbox.filter(practice_id__any=practice_ids)
    _expire(outbox, now)
    _recover(outbox, now)
    practices = sorted(
        outbox.filter(status=MessageStatus.QUEUED, scheduled_for__lte=now)
        .order_by()
        .values_list("practice_id", flat=True)
        .distinct()
    )
    claimed: list[int] = []
    for start in range(0, len(practices), CLAIM_PRACTICES_PER_TRANSACTION):
        batch = _claim(practices[start : start + CLAIM_PRACTICES_PER_TRANSACTION], now)
        for practice_id in sorted(batch):
            ids = batch[practice_id]
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


def _allowances_lock(practice_ids: list[int], now: dt.datetime) -> dict[int, SendAllowance]:
    """Lock these practices' send allowances, in practice order (a concurrent claim of the same
    practices waits for this transaction, then sees what it took); return them, moved on to
    ``now``'s minute."""
    minute = now.astimezone(dt.UTC).replace(second=0, microsecond=0)
    SendAllowance.objects.bulk_create(
        [SendAllowance(practice_id=pk, minute=minute) for pk in practice_ids],
        ignore_conflicts=True,
    )
    allowances = {
        allowance.pk: allowance
        for allowance in SendAllowance.objects.select_for_update()
        .filter(pk__any=practice_ids)
        .order_by("pk")
    }
    for allowance in allowances.values():
        if allowance.minute < minute:
            allowance.minute, allowance.claimed = minute, 0
    return allowances


def _due_rows(limits: dict[int, int], now: dt.datetime) -> list[tuple[int, int, str]]:
    """(id, practice, channel) of each practice's oldest due queued messages, at most its
    limit, locked (rows another claim holds are skipped)."""
    if connection.vendor != "postgresql":
        # SQLite (the embedded default) locks the whole database for a write: a query per
        # practice, in this transaction.
        rows = []
        for practice_id, limit in limits.items():
            rows += (
                _due(OutboundMessage.objects.filter(practice_id=practice_id), now)
                .order_by("scheduled_for", "id")
                .values_list("id", "practice_id", "channel")[:limit]
            )
        return rows
    # One statement for every practice: each practice's oldest due messages by the outbox's
    # (status, scheduled for) index, locked (of the outbox only), at most its limit.
    table = OutboundMessage._meta.db_table
    sql = f"""
        SELECT m.id, m.practice_id, m.channel
        FROM unnest(%s::bigint[], %s::int[]) AS v(practice_id, lim)
        CROSS JOIN LATERAL (
            SELECT o.id, o.practice_id, o.channel FROM {table} o
            WHERE o.practice_id = v.practice_id AND o.status = %s AND o.scheduled_for <= %s
                AND (o.expires_at IS NULL OR o.expires_at > %s)
            ORDER BY o.scheduled_for, o.id LIMIT v.lim
            FOR UPDATE OF o SKIP LOCKED
        ) m
    """  # noqa: S608 - the table name is the model's, values are parameters
    with connection.cursor() as cursor:
        cursor.execute(sql, [list(limits), list(limits.values()), MessageStatus.QUEUED, now, now])
        return list(cursor.fetchall())


def _due(messages: QuerySet[OutboundMessage], now: dt.datetime) -> QuerySet[OutboundMessage]:
    """Queued, due at ``now`` and not expired."""
    return messages.filter(status=MessageStatus.QUEUED, scheduled_for__lte=now).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )


# Durable: a claim commits before its ids go to the send queue, so it is never nested.
@transaction.atomic(durable=True)
def _claim(practice_ids: list[int], now: dt.datetime) -> dict[int, list[int]]:
    """Claim these practices' due messages within their allowances; their ids per practice."""
    allowances = _allowances_lock(practice_ids, now)
    rate = settings.SEND_RATE_PER_PRACTICE_PER_MINUTE
    limits = {
        pk: rate - allowance.claimed
        for pk, allowance in allowances.items()
        if allowance.claimed < rate  # a practice whose minute is used up waits for the next
    }
    rows = _due_rows(limits, now) if limits else []
    windows = {
        pk: (start, end, zone)
        for pk, start, end, zone in Practice.objects.filter(
            pk__any={practice for _id, practice, _channel in rows}
        ).values_list("pk", "sending_window_start", "sending_window_end", "time_zone")
    }
    claimed: dict[int, list[int]] = defaultdict(list)
    waits: dict[dt.datetime, list[int]] = defaultdict(list)
    opens: dict[int, dt.datetime] = {}  # a practice's window, the same for all its messages
    for message_id, practice_id, channel in rows:
        if channel in WINDOWED_CHANNELS:
            if practice_id not in opens:
                start, end, zone = windows[practice_id]
                opens[practice_id] = next_sending_time(
                    now, start=start, end=end, tz=zoneinfo.ZoneInfo(zone)
                )
            if opens[practice_id] > now:
                # Quiet hours: wait for the window (the expiry still applies).
                waits[opens[practice_id]].append(message_id)
                continue
        claimed[practice_id].append(message_id)
    # Set-wise (Django's bulk_update builds a CASE per row and field, slower than the claim):
    # the waiting texts of a practice all wait for the same window, and every claimed
    # message gets the same status and claim.
    for at, ids in waits.items():
        OutboundMessage.objects.filter(pk__any=ids).update(scheduled_for=at)
    every = [pk for ids in claimed.values() for pk in ids]
    if every:
        OutboundMessage.objects.filter(pk__any=every).update(
            status=MessageStatus.SENDING,
            claimed_until=now + dt.timedelta(seconds=CLAIM_SECONDS),
            attempts=F("attempts") + 1,
            passed_check_at=None,
        )
        taken = [allowances[pk] for pk in sorted(claimed)]
        for allowance in taken:
            allowance.claimed += len(claimed[allowance.pk])
        _allowances_save(taken)
        _claimed_events_record(claimed, now)
    return dict(claimed)


def _allowances_save(taken: list[SendAllowance]) -> None:
    """Save the allowances' minute and count: on PostgreSQL one UPDATE from arrays (Django's
    bulk_update compiles a CASE per row and field: most of a claim's Python time)."""
    if connection.vendor != "postgresql":
        SendAllowance.objects.bulk_update(taken, ["minute", "claimed"])
        return
    table = SendAllowance._meta.db_table
    column = SendAllowance._meta.pk.column
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS a SET minute = v.minute, claimed = v.claimed "  # noqa: S608
            "FROM unnest(%s::bigint[], %s::timestamptz[], %s::int[]) AS v(pk, minute, claimed) "
            f"WHERE a.{column} = v.pk",
            [
                [allowance.pk for allowance in taken],
                [allowance.minute for allowance in taken],
                [allowance.claimed for allowance in taken],
            ],
        )


def _claimed_events_record(claimed: dict[int, list[int]], now: dt.datetime) -> None:
    """Each claimed message's ``sending`` event (from the engine), in practice order then
    the claim's order."""
    message_events_insert(
        [(practice_id, pk, "engine") for practice_id, ids in claimed.items() for pk in ids],
        status=MessageStatus.SENDING,
        reason="",
        at=now,
    )
