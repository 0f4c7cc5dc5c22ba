"""Telling the EMR (DESIGN §4.1.1): the practice's events feed and its outbound webhooks.

Every app records what an EMR connector may want to know with ``event_emit`` (inside the
transaction of the change, so an event exists exactly when the change committed). An event
holds ids, never PHI: no names, phones, emails or message bodies.

Each event is POSTed to every webhook endpoint of the practice subscribed to its type, from
the database (``WebhookDelivery`` rows due at ``next_attempt_at``): the beat task
``trackstat.tasks.send_webhook_deliveries_task`` every minute and ``manage.py tick`` send
what is due, so a worker restart loses nothing. Sending itself is in
``trackstat.webhook_send``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import secrets
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import BigIntegerField, Func, Q
from django.utils import timezone

from trackstat.audit import audit_record
from trackstat.credentials import secret_encrypt
from trackstat.models import (
    DeliveryStatus,
    Event,
    EventType,
    Practice,
    WebhookDelivery,
    WebhookEndpoint,
)
from trackstat.webhook_targets import webhook_target_check

EVENTS_PAGE_SIZE = 100
WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
MAX_ENDPOINTS_PER_PRACTICE = 20


def event_emit(
    *, practice: Practice | int, type: str, data: dict, at: dt.datetime | None = None
) -> Event:
    """Record one event for the practice's feed and queue it for each subscribed webhook."""
    if type not in EventType.values:
        raise ValueError(f"unknown event type {type!r}")
    practice_id = practice if isinstance(practice, int) else practice.pk
    at = at or timezone.now()
    event = Event.objects.create(
        practice_id=practice_id,
        type=type,
        data=data,
        created_at=at,
        xid=_postgres_xid(CURRENT_XID) if connection.vendor == "postgresql" else None,
    )
    endpoints = [
        endpoint
        for endpoint in WebhookEndpoint.objects.filter(practice_id=practice_id)
        if type in endpoint.events
    ]
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            practice_id=practice_id,
            endpoint=endpoint,
            event=event,
            first_due_at=at,
            next_attempt_at=at,
        )
        for endpoint in endpoints
    )
    return event


def event_json(event: Event) -> dict:
    """An event as the feed and the webhooks show it."""
    return {
        "id": event.pk,
        "type": event.type,
        "created_at": event.created_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "data": event.data,
    }


# --- the feed ------------------------------------------------------------------------------


def _postgres_xid(function: str) -> Func:
    """A PostgreSQL transaction id (``xid8``) as a bigint, from a function of no argument."""
    return Func(template=f"{function}::text::bigint", output_field=BigIntegerField())


# The id of the current transaction; of the oldest one still running when the statement's
# snapshot was taken (every transaction with a lower id has ended); this one's, if assigned.
CURRENT_XID = "pg_current_xact_id()"
OLDEST_RUNNING_XID = "pg_snapshot_xmin(pg_current_snapshot())"
OWN_XID = "pg_current_xact_id_if_assigned()"


def cursor_encode(xid: int, event_id: int) -> str:
    return base64.urlsafe_b64encode(f"e{xid}.{event_id}".encode()).decode().rstrip("=")


def cursor_decode(cursor: str) -> tuple[int, int]:
    """The (transaction id, event id) an opaque cursor stands for; ValidationError naming
    ``after`` if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    xid, _, event_id = raw[1:].partition(".")
    if not (raw.startswith("e") and xid.isdigit() and event_id.isdigit() and len(raw) < 42):
        raise ValidationError({"after": ["Not a cursor this API gave out."]})
    return int(xid), int(event_id)


def events_page(*, practice: Practice, after: str | None) -> dict:
    """Up to 100 of the practice's events after the cursor, oldest first, with the cursor to
    continue from (the same cursor when nothing new is there yet).

    Event ids are taken when an event is written, not when its transaction commits, so a
    feed in id order could hand out an event written after one whose transaction is still
    running, and the poller's next cursor would step over that one when it commits. On
    PostgreSQL the feed therefore goes in (transaction id, id) order and holds back every
    event of a transaction not older than the oldest one still running: what it has handed
    out stays before anything that commits later. (On SQLite one transaction writes at a
    time and the transaction id is 0 throughout.)"""
    after_xid, after_id = cursor_decode(after) if after else (0, 0)
    events = Event.objects.filter(practice=practice).filter(
        Q(xid__gt=after_xid) | Q(xid=after_xid, pk__gt=after_id)
        if connection.vendor == "postgresql"
        else Q(pk__gt=after_id)
    )
    if connection.vendor == "postgresql":
        # Ended transactions' events, and this transaction's own.
        events = events.filter(
            Q(xid__lt=_postgres_xid(OLDEST_RUNNING_XID)) | Q(xid=_postgres_xid(OWN_XID))
        ).order_by("xid", "pk")
    else:
        events = events.order_by("pk")
    page = list(events[:EVENTS_PAGE_SIZE])
    if page:
        after_xid, after_id = page[-1].xid or 0, page[-1].pk
    return {
        "results": [event_json(e) for e in page],
        "next_cursor": cursor_encode(after_xid, after_id),
    }


# --- endpoints -----------------------------------------------------------------------------


def _events_clean(events: object) -> list[str]:
    if not isinstance(events, list) or not events:
        raise ValidationError({"events": ["Give a non-empty list of event types."]})
    unknown = [e for e in events if not isinstance(e, str) or e not in EventType.values]
    if unknown:
        raise ValidationError(
            {
                "events": [
                    f"Unknown event type {unknown[0]!r}; use one of: "
                    + ", ".join(EventType.values)
                    + "."
                ]
            }
        )
    return list(dict.fromkeys(events))


@transaction.atomic
def webhook_endpoint_create(
    *, practice: Practice, url: object, events: object, actor
) -> tuple[WebhookEndpoint, str]:
    """Create an endpoint; answers it and its secret (the one time the secret is shown)."""
    if not isinstance(url, str) or not url.strip():
        raise ValidationError({"url": ["Give the URL to POST events to."]})
    url = url.strip()
    webhook_target_check(url, field="url")
    events = _events_clean(events)
    if WebhookEndpoint.objects.filter(practice=practice).count() >= MAX_ENDPOINTS_PER_PRACTICE:
        raise ValidationError({"url": [f"At most {MAX_ENDPOINTS_PER_PRACTICE} webhooks."]})
    secret = WEBHOOK_SECRET_PREFIX + secrets.token_urlsafe(32)
    endpoint = WebhookEndpoint.objects.create(
        practice=practice, url=url, events=events, secret_encrypted=secret_encrypt(secret)
    )
    audit_record(
        practice=practice,
        actor=actor,
        action="webhook.create",
        target=endpoint,
        before=None,
        after={"url": url, "events": events},
    )
    return endpoint, secret


@transaction.atomic
def webhook_endpoint_delete(*, practice: Practice, endpoint: WebhookEndpoint, actor) -> None:
    """Delete an endpoint and its pending deliveries."""
    audit_record(
        practice=practice,
        actor=actor,
        action="webhook.delete",
        target=endpoint,
        before={"url": endpoint.url, "events": endpoint.events},
        after=None,
    )
    endpoint.delete()


@transaction.atomic
def webhook_deliveries_resend(
    *, practice: Practice, deliveries: Iterable[int], now: dt.datetime
) -> int:
    """Due again now, with a fresh retry schedule (an Administrator's Resend)."""
    return WebhookDelivery.objects.filter(practice=practice, pk__in=list(deliveries)).update(
        status=DeliveryStatus.PENDING, first_due_at=now, next_attempt_at=now, attempts=0
    )
