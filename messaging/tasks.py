"""Celery tasks of the messaging app: thin callers of the send and reconcile services."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from messaging.outbox.reconcile import messages_reconcile
from messaging.outbox.send import message_send, messages_send
from messaging.webhook_events import (
    webhook_events_clean,
    webhook_events_process,
    webhook_events_process_pending,
)
from messaging.webhook_services import sendgrid_events_apply, twilio_status_apply


@shared_task(ignore_result=True)
def send_message_task(message_id: int) -> None:
    """Send one claimed outbox message. Idempotent: a redelivered or duplicate task finds the
    message already handled and does nothing."""
    message_send(message_id=message_id)


@shared_task(ignore_result=True)
def send_messages_task(message_ids: list[int]) -> None:
    """Send a batch of claimed outbox messages (``tick`` hands them over in batches of
    ``SEND_TASK_BATCH_SIZE``: fewer tasks, and a few queries per batch instead of per
    message). Idempotent, message by message, like ``send_message_task``."""
    messages_send(message_ids=message_ids)


@shared_task(ignore_result=True)
def reconcile_messages_task(message_ids: list[int] | None = None) -> None:
    """Ask the providers about ``unknown`` messages (all due ones, or only ``message_ids``).
    Idempotent: a settled message is no longer ``unknown`` and is not looked at again."""
    messages_reconcile(now=timezone.now(), message_ids=message_ids)


@shared_task(ignore_result=True)
def process_webhook_events_task(event_ids: list[int]) -> None:
    """Apply stored webhook events (``WebhookEvent`` row ids: nothing about the patient).
    Idempotent: each row is claimed and marked applied with its effects, so a redelivered
    task, or the sweep running meanwhile, applies none twice."""
    webhook_events_process(event_ids=event_ids, now=timezone.now())


@shared_task(ignore_result=True)
def sweep_webhook_events_task() -> None:
    """Beat: apply the webhook events still unprocessed a little while after they arrived
    (their task was lost, or the broker was down), and delete old applied ones."""
    now = timezone.now()
    webhook_events_process_pending(now=now)
    webhook_events_clean(now=now)


# The webhooks queued these before events were stored first (``messaging.webhook_intake``);
# kept so that tasks already queued when this version is deployed still apply.


@shared_task(ignore_result=True)
def apply_twilio_status_task(outbox_id: str, fields: dict[str, str]) -> None:
    """Apply a verified Twilio status callback. ``fields`` hold only the sid, the status and
    the error code (no numbers, no text). Idempotent: stored once per provider event id."""
    twilio_status_apply(outbox_id=outbox_id, params=fields, now=timezone.now())


@shared_task(ignore_result=True)
def apply_sendgrid_events_task(events: list[dict]) -> None:
    """Apply verified SendGrid events, stripped of addresses (see ``webhooks``). Idempotent:
    each is stored once per ``sg_event_id``."""
    sendgrid_events_apply(events=events, now=timezone.now())
