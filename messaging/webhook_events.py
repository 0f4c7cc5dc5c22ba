"""Applying stored provider webhook events (DESIGN §6, §7), and keeping the table small.

The webhooks store each verified event first (``messaging.webhook_intake``); a task applies
it from its row, and a beat sweep applies what is still unprocessed after a short delay
(``manage.py tick`` applies them all, for the in-process flow).

Applying an event claims its row (``SELECT … FOR UPDATE SKIP LOCKED``) and marks it processed
in the same transaction as its effects, so the task and the sweep never both apply one. An
event that cannot be applied (malformed, or failing ``MAX_ATTEMPTS`` times) is kept and
marked failed; the others are unaffected. Nothing here logs a payload: only row ids, kinds
and exception class names.

Retention: an applied row's payload is emptied at once; applied and failed rows are deleted
``WEBHOOK_EVENT_RETENTION_DAYS`` after they arrived (long after any provider redelivers).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from messaging.models import WebhookEvent, WebhookKind
from messaging.webhook_services import (
    sendgrid_event_apply,
    twilio_inbound_receive,
    twilio_status_apply,
)

logger = logging.getLogger(__name__)

# A row still unprocessed this long after it arrived is the sweep's (the task had its turn).
SWEEP_AFTER = dt.timedelta(seconds=30)
SWEEP_BATCH = 500
MAX_ATTEMPTS = 5


class MalformedEvent(ValueError):
    """An event that can never be applied; its message says why without quoting it."""


def webhook_event_process(*, event_id: int, now: dt.datetime) -> Any:
    """Apply one stored event, once. Returns what applying returned (for an inbound SMS, its
    ``InboundResult``), or None when it was not applied now: already applied, being applied
    by another worker (its row is locked: skipped), given up, or failing this time."""
    with transaction.atomic(durable=True):  # its own transaction: the claim and the effects
        event = (
            WebhookEvent.objects.select_for_update(skip_locked=True)
            .filter(pk=event_id, processed_at__isnull=True, failed_at__isnull=True)
            .first()
        )
        if event is None:
            return None
        event.attempts += 1
        try:
            with transaction.atomic():  # its effects, undone whole if it fails
                result = _apply(event)
        except Exception as error:  # kept and retried (or given up), never lost
            malformed = isinstance(error, MalformedEvent)
            event.error = (str(error) if malformed else f"{type(error).__name__}")[:200]
            if malformed or event.attempts >= MAX_ATTEMPTS:
                event.failed_at = now
            event.save(update_fields=["attempts", "error", "failed_at"])
            logger.warning(
                "webhook event %s (%s) attempt %s failed: %s%s",
                event.pk,
                event.kind,
                event.attempts,
                event.error,
                "; given up" if event.failed_at else "",
            )
            return None
        event.processed_at = now
        event.payload = ""  # applied: nothing of it is needed any more
        event.error = ""
        event.save(update_fields=["attempts", "processed_at", "payload", "error"])
        return result


def _apply(event: WebhookEvent) -> Any:
    try:
        payload = json.loads(event.payload)
    except ValueError:
        raise MalformedEvent("payload is not JSON") from None
    if not isinstance(payload, dict):
        raise MalformedEvent("not an event object")
    # Applied as of its arrival (event times, the Inbox), whenever the worker gets to it.
    at = event.received_at
    match event.kind:
        case WebhookKind.TWILIO_STATUS:
            return twilio_status_apply(
                outbox_id=str(payload.get("outbox", "")), params=payload, now=at
            )
        case WebhookKind.TWILIO_INBOUND:
            return twilio_inbound_receive(params=payload, now=at)
        case WebhookKind.SENDGRID:
            return sendgrid_event_apply(event=payload, now=at)
    raise MalformedEvent(f"unknown kind {event.kind!r}")


def webhook_events_process(*, event_ids: list[int], now: dt.datetime) -> int:
    """Apply stored events in order, each in its own transaction; returns how many were
    applied now."""
    return sum(webhook_event_process(event_id=pk, now=now) is not None for pk in event_ids)


def webhook_events_process_pending(
    *, now: dt.datetime, min_age: dt.timedelta = SWEEP_AFTER, batch: int = SWEEP_BATCH
) -> int:
    """The sweep: apply, oldest first, every event still unprocessed ``min_age`` after it
    arrived (the task had its turn). Rows another worker holds are skipped; each is looked
    at once per sweep. Returns how many were applied."""
    pending = WebhookEvent.objects.filter(
        processed_at__isnull=True, failed_at__isnull=True, received_at__lte=now - min_age
    ).order_by("id")
    applied, after = 0, 0
    while True:
        ids = list(pending.filter(pk__gt=after).values_list("pk", flat=True)[:batch])
        if not ids:
            return applied
        applied += webhook_events_process(event_ids=ids, now=now)
        after = ids[-1]


def webhook_events_clean(*, now: dt.datetime) -> int:
    """Delete applied and failed events older than ``WEBHOOK_EVENT_RETENTION_DAYS``; returns
    how many."""
    cutoff = now - dt.timedelta(days=settings.WEBHOOK_EVENT_RETENTION_DAYS)
    deleted, _ = (
        WebhookEvent.objects.filter(received_at__lt=cutoff)
        .filter(Q(processed_at__isnull=False) | Q(failed_at__isnull=False))
        .delete()
    )
    return deleted


def webhook_events_retry(*, event_ids: list[int]) -> int:
    """Send failed events back to the sweep (the operator fixed what failed them); returns
    how many. Applied and pending events are left alone."""
    return WebhookEvent.objects.filter(pk__in=event_ids, failed_at__isnull=False).update(
        failed_at=None, attempts=0, error=""
    )
