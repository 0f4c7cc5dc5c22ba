"""Services of the messaging app that staff call directly."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from messaging.models import MessageEvent, MessageStatus, OutboundMessage
from messaging.outbox.send import message_send
from trackstat.models import Practice

STAFF_CLAIM = dt.timedelta(minutes=5)


def message_send_now(*, practice: Practice, reason: str, **fields) -> OutboundMessage:
    """A message staff send themselves (a test, an Inbox reply): into the outbox already
    claimed, then through the same send path as every message (re-check, provider,
    history). ``fields`` are the OutboundMessage's (channel, to, body, patient, …).

    A top-level action: it commits the message, then sends it, so it refuses to run inside
    a transaction."""
    now = timezone.now()
    with transaction.atomic(durable=True):
        message = OutboundMessage.objects.create(
            practice=practice,
            status=MessageStatus.SENDING,
            scheduled_for=now,
            claimed_until=now + STAFF_CLAIM,
            attempts=1,
            **fields,
        )
        MessageEvent.objects.create(
            practice=practice,
            message=message,
            status=MessageStatus.SENDING,
            at=now,
            source="staff",
            reason=reason,
        )
    message_send(message_id=message.pk, now=now)
    message.refresh_from_db()
    return message
