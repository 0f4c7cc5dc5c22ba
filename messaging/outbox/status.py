"""Message status transitions, each recorded as a MessageEvent (DESIGN §6).

A status only moves forward (``STATUS_RANK``): a late or duplicate event never moves a
message back. Provider events are stored once per provider event id.
"""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet

from messaging.models import STATUS_RANK, MessageEvent, MessageStatus, OutboundMessage
from patients.models import Patient
from trackstat.events import event_emit
from trackstat.models import EventType

# What the EMR hears as ``message.failed`` (DESIGN §4.1.1): the message did not reach the
# patient (the report's Errors and Bounced).
FAILED_STATUSES = (
    MessageStatus.FAILED,
    MessageStatus.UNDELIVERED,
    MessageStatus.BOUNCED,
    MessageStatus.DROPPED,
)


def may_move(current: str, new: str) -> bool:
    """Forward only; the one way back is sending → queued, a retry the provider never took."""
    if current == MessageStatus.SENDING and new == MessageStatus.QUEUED:
        return True
    return STATUS_RANK[MessageStatus(new)] > STATUS_RANK[MessageStatus(current)]


def message_transition(
    message: OutboundMessage,
    *,
    status: str,
    reason: str = "",
    at: dt.datetime,
    source: str,
    provider_event_id: str | None = None,
    fields: dict | None = None,
) -> bool:
    """Move one (locked or freshly read) message to ``status`` if that is forward.

    Returns whether it moved. ``fields`` are saved with it (sent_at, provider_id, …).
    """
    if not may_move(message.status, status):
        return False
    if provider_event_id is not None:
        try:
            with transaction.atomic():
                MessageEvent.objects.create(
                    practice_id=message.practice_id,
                    message=message,
                    status=status,
                    reason=reason[:200],
                    at=at,
                    source=source,
                    provider_event_id=provider_event_id,
                )
        except IntegrityError:
            return False  # this provider event was already applied
    else:
        MessageEvent.objects.create(
            practice_id=message.practice_id,
            message=message,
            status=status,
            reason=reason[:200],
            at=at,
            source=source,
        )
    message.status = status
    message.status_reason = reason[:200]
    message.report_pending = True
    for name, value in (fields or {}).items():
        setattr(message, name, value)
    message.save(
        update_fields=["status", "status_reason", "report_pending", "updated_at", *(fields or {})]
    )
    if status in FAILED_STATUSES and not message.is_test:
        message_failed_event_emit(message)
    return True


def message_failed_event_emit(message: OutboundMessage) -> None:
    """``message.failed`` for the EMR (DESIGN §4.1.1): ids and the reason, never the body."""
    patient_external_id = (
        Patient.objects.filter(pk=message.patient_id).values_list("external_id", flat=True).first()
        if message.patient_id
        else None
    )
    event_emit(
        practice=message.practice_id,
        type=EventType.MESSAGE_FAILED,
        data={
            "message_id": message.pk,
            "patient_external_id": patient_external_id,
            "channel": message.channel,
            "status_reason": message.status_reason,
        },
    )


def messages_transition(
    *, messages: QuerySet[OutboundMessage], status: str, reason: str, at: dt.datetime, source: str
) -> int:
    """Move many messages (filtered to states that may move) to ``status``, set-wise: one
    locking SELECT of their ids, one UPDATE, one bulk insert of events.

    The rows are locked as they are read (rows another transaction holds, such as a message
    being sent, are skipped), so a message cannot change between the read and the update: a
    send that finishes meanwhile is never moved back.
    """
    with transaction.atomic():
        rows = list(
            messages.select_for_update(skip_locked=True, of=("self",)).values_list(
                "pk", "practice_id"
            )
        )
        if not rows:
            return 0
        OutboundMessage.objects.filter(pk__in=[pk for pk, _ in rows]).update(
            status=status, status_reason=reason[:200], report_pending=True, updated_at=at
        )
        message_events_insert(
            [(practice_id, pk, source) for pk, practice_id in rows],
            status=status,
            reason=reason[:200],
            at=at,
        )
        return len(rows)


def message_events_insert(
    events: list[tuple[int, int, str]], *, status: str, reason: str, at: dt.datetime
) -> None:
    """Record that these messages moved to ``status`` (one event each: practice id, message
    id, source), in this order. On PostgreSQL one INSERT from arrays, without a model per
    event (for a send task's 50 messages, the models cost more than the statement)."""
    if not events:
        return
    if connection.vendor != "postgresql":
        MessageEvent.objects.bulk_create(
            MessageEvent(
                practice_id=practice_id,
                message_id=message_id,
                status=status,
                reason=reason,
                at=at,
                source=source,
            )
            for practice_id, message_id, source in events
        )
        return
    table = connection.ops.quote_name(MessageEvent._meta.db_table)
    practice_ids, message_ids, sources = (list(column) for column in zip(*events, strict=True))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (practice_id, message_id, status, reason, at, source) "  # noqa: S608
            "SELECT v.practice_id, v.message_id, %s, %s, %s, v.source "
            "FROM unnest(%s::bigint[], %s::bigint[], %s::text[]) WITH ORDINALITY "
            "AS v(practice_id, message_id, source, n) ORDER BY v.n",
            [status, reason, at, practice_ids, message_ids, sources],
        )


def message_unsubscribed_record(*, message: OutboundMessage, at: dt.datetime) -> bool:
    """Attribute an opt-out to ``message`` (its patient answered it with STOP, used its
    unsubscribe link or reported it as spam): reports count it once, for its campaign.
    Test sends and staff messages are nobody's campaign. Returns whether it was recorded."""
    if message.is_test or message.campaign_id is None:
        return False
    return bool(
        OutboundMessage.objects.filter(pk=message.pk, unsubscribed_at__isnull=True).update(
            unsubscribed_at=at, report_pending=True
        )
    )
