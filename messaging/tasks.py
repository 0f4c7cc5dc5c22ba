"""Celery tasks of the messaging app: thin callers of the send and reconcile services."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from campaigns.engine import message_send
from campaigns.engine.send import messages_send
from messaging.reconcile import messages_reconcile
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
def apply_twilio_status_task(outbox_id: str, fields: dict[str, str]) -> None:
    """Apply a verified Twilio status callback. ``fields`` hold only the sid, the status and
    the error code (no numbers, no text). Idempotent: stored once per provider event id."""
    twilio_status_apply(outbox_id=outbox_id, params=fields, now=timezone.now())


@shared_task(ignore_result=True)
def apply_sendgrid_events_task(events: list[dict]) -> None:
    """Apply verified SendGrid events, stripped of addresses (see ``webhooks``). Idempotent:
    each is stored once per ``sg_event_id``."""
    sendgrid_events_apply(events=events, now=timezone.now())
