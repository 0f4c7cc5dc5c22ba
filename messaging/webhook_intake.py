"""Durable intake of provider webhooks (DESIGN §6, §7): store first, answer, apply from there.

A verified webhook is written to ``WebhookEvent`` (one row per provider event: a redelivery
stores nothing new) before the provider gets its answer, so what it said survives a broker
outage, a crashed worker or a bug in applying it. Then, once the rows are committed, a task
applies them (it gets row ids only, nothing about the patient); if the broker cannot take the
task the request still succeeds and a beat sweep applies the rows that are still unprocessed
after a short delay (``messaging.webhook_events``, which applies them).

An inbound SMS is applied in the request itself, right after it is stored, so that HELP is
answered in the TwiML response and replies apply in the order they arrived; should that
fail, the task and the sweep retry it like any other event. Nothing here logs a payload: only
row ids, kinds and exception class names.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction

from messaging.models import OutboundMessage, WebhookEvent, WebhookKind
from messaging.tasks import process_webhook_events_task
from messaging.webhook_events import webhook_event_process
from messaging.webhook_services import (
    SENDGRID_OPT_OUTS,
    SENDGRID_STATUSES,
    TWILIO_STATUSES,
    InboundResult,
)
from trackstat.models import Practice
from trackstat.validators import storable_text

logger = logging.getLogger(__name__)

# Ids per task: a SendGrid batch of hundreds of events is a few tasks, not hundreds.
TASK_BATCH = 100
# Seconds a webhook waits for a free pooled broker connection before leaving its events to
# the sweep.
BROKER_WAIT = 2
MAX_KEY_LENGTH = 191  # "sendgrid:" + the id must fit MessageEvent.provider_event_id (200)

# What applying needs from each kind, and nothing about the patient besides an inbound SMS's
# own numbers and words (which the Inbox stores anyway).
TWILIO_STATUS_FIELDS = ("MessageSid", "MessageStatus", "ErrorCode")
TWILIO_INBOUND_FIELDS = ("MessageSid", "SmsSid", "From", "To", "Body")
SENDGRID_EVENT_FIELDS = ("event", "outbox_id", "sg_event_id", "timestamp", "type")


@dataclass(frozen=True)
class Incoming:
    """One verified event, as it will be stored."""

    key: str | None
    payload: Any
    practice_id: int | None = None
    malformed: str = ""  # why it can never be applied: stored as failed at once


def twilio_status_accept(
    *, outbox_id: str, params: Mapping[str, str], practice: Practice | None, now: dt.datetime
) -> list[int]:
    """Store a verified Twilio status callback and queue it; returns the new row ids (none
    for a redelivery or a status that changes nothing, such as ``queued``)."""
    payload = {name: params.get(name, "") for name in TWILIO_STATUS_FIELDS}
    if payload["MessageStatus"] not in TWILIO_STATUSES:
        return []  # nothing to apply
    payload["outbox"] = outbox_id
    sid = payload["MessageSid"]
    incoming = _checked(
        key=f"twilio:{sid}:{payload['MessageStatus']}" if sid else None,
        payload=payload,
        practice_id=practice.pk if practice else None,
    )
    return webhook_events_store(kind=WebhookKind.TWILIO_STATUS, incoming=[incoming], now=now)


def twilio_inbound_accept(
    *, params: Mapping[str, str], practice: Practice | None, now: dt.datetime
) -> InboundResult | None:
    """Store a verified inbound SMS, then apply it at once (its HELP answer goes back in the
    TwiML). Returns the result of applying it, or None when it was not applied now (a
    redelivery, or applying failed: the task and the sweep retry it)."""
    # Kept whatever it holds: a NUL (which no PostgreSQL text can hold) is dropped and a lone
    # surrogate replaced, in every field; neither is part of what the patient meant.
    payload = {name: storable_text(params.get(name, "")) for name in TWILIO_INBOUND_FIELDS}
    sid = payload["MessageSid"] or payload["SmsSid"]
    incoming = _checked(
        key=f"twilio-inbound:{sid}" if sid else None,
        payload=payload,
        practice_id=practice.pk if practice else None,
    )
    ids = webhook_events_store(
        kind=WebhookKind.TWILIO_INBOUND, incoming=[incoming], now=now, enqueue=False
    )
    if not ids:
        return None
    result = webhook_event_process(event_id=ids[0], now=now)
    if result is None:
        transaction.on_commit(partial(_enqueue, ids))
    return result


def sendgrid_events_accept(*, events: list[Any], now: dt.datetime) -> list[int]:
    """Store a verified batch of SendGrid events, one row per event, and queue them; returns
    the new row ids. Events that change nothing (``processed``, ``deferred``) are not kept;
    a malformed one is kept and marked failed, and the others go on."""
    wanted = [
        event
        for event in events
        if not isinstance(event, dict)
        or str(event.get("event", "")) in SENDGRID_STATUSES
        or str(event.get("event", "")) in SENDGRID_OPT_OUTS
    ]
    outbox_ids = {
        int(value)
        for event in wanted
        if isinstance(event, dict)
        and (value := str(event.get("outbox_id", ""))).isdigit()
        and len(value) < 19
    }
    practices = dict(
        OutboundMessage.objects.filter(pk__in=outbox_ids).values_list("pk", "practice_id")
    )
    incoming = []
    for event in wanted:
        if not isinstance(event, dict):
            incoming.append(Incoming(key=None, payload=event, malformed="not an event object"))
            continue
        payload = {name: event[name] for name in SENDGRID_EVENT_FIELDS if name in event}
        sg_event_id = payload.get("sg_event_id")
        outbox_id = str(payload.get("outbox_id", ""))
        practice_id = practices.get(int(outbox_id)) if outbox_id.isdigit() else None
        if not isinstance(sg_event_id, str) or not sg_event_id:
            incoming.append(
                Incoming(
                    key=None, payload=payload, practice_id=practice_id, malformed="no sg_event_id"
                )
            )
            continue
        incoming.append(
            _checked(key=f"sendgrid:{sg_event_id}", payload=payload, practice_id=practice_id)
        )
    return webhook_events_store(kind=WebhookKind.SENDGRID, incoming=incoming, now=now)


def _checked(*, key: str | None, payload: dict, practice_id: int | None) -> Incoming:
    """The event as stored: malformed (with its key dropped) when a field holds a NUL, which
    no PostgreSQL text can, or its id is too long to record."""
    bad = sorted(
        name for name, value in payload.items() if isinstance(value, str) and "\x00" in value
    )
    if bad:
        return Incoming(None, payload, practice_id, f"NUL character in {', '.join(bad)}")
    if key is not None and len(key) > MAX_KEY_LENGTH:
        return Incoming(None, payload, practice_id, "event id too long")
    return Incoming(key, payload, practice_id)


@transaction.atomic(durable=True)
def webhook_events_store(
    *, kind: str, incoming: list[Incoming], now: dt.datetime, enqueue: bool = True
) -> list[int]:
    """Store verified events, one row per provider event id (one already stored, or twice in
    ``incoming``, is skipped); malformed ones are stored already failed. Returns the ids of
    the new rows to apply and, with ``enqueue``, hands them to the task once committed."""
    keys = {item.key for item in incoming if item.key is not None}
    seen = set(WebhookEvent.objects.filter(event_key__in=keys).values_list("event_key", flat=True))
    rows = []
    for item in incoming:
        if item.key is not None:
            if item.key in seen:
                continue
            seen.add(item.key)
        rows.append(
            WebhookEvent(
                kind=kind,
                practice_id=item.practice_id,
                event_key=item.key,
                # ASCII JSON text: a NUL (or any control character) stays escaped.
                payload=json.dumps(item.payload),
                received_at=now,
                failed_at=now if item.malformed else None,
                error=item.malformed[:200],
            )
        )
    try:
        with transaction.atomic():
            created = WebhookEvent.objects.bulk_create(rows)
    except IntegrityError:
        # A concurrent delivery stored one of them meanwhile: store the others one by one.
        created = []
        for row in rows:
            row.pk = None
            try:
                with transaction.atomic():
                    row.save(force_insert=True)
            except IntegrityError:
                continue
            created.append(row)
    for row in created:
        if row.failed_at is not None:
            logger.warning("webhook event %s (%s) kept as failed: %s", row.pk, kind, row.error)
    ids = [row.pk for row in created if row.failed_at is None]
    if ids and enqueue:
        transaction.on_commit(partial(_enqueue, ids))
    return ids


def _enqueue(event_ids: list[int]) -> None:
    """Hand stored events to the task. A broker that cannot take them must not fail (or
    hold up) the webhook: the rows are safe and the sweep applies them shortly, so there is
    no waiting for the broker to come back here (Celery's publish would retry for seconds)."""
    task = process_webhook_events_task
    chunks = [event_ids[i : i + TASK_BATCH] for i in range(0, len(event_ids), TASK_BATCH)]
    try:
        if task.app.conf.task_always_eager:
            for chunk in chunks:
                task.apply_async((chunk,))
            return
        with task.app.pool.acquire(block=True, timeout=BROKER_WAIT) as broker:
            broker.ensure_connection(max_retries=0)
            for chunk in chunks:
                task.apply_async((chunk,), connection=broker, retry=False)
    except Exception as error:  # any broker failure; the rows wait for the sweep
        logger.warning(
            "webhook events from %s: not queued (%s); the sweep will apply them",
            event_ids[0],
            type(error).__name__,
        )
