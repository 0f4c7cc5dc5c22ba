"""Celery tasks of the messaging app: thin callers of the send and reconcile services."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from campaigns.engine import message_send
from messaging.reconcile import messages_reconcile


@shared_task(ignore_result=True)
def send_message_task(message_id: int) -> None:
    """Send one claimed outbox message. Idempotent: a redelivered or duplicate task finds the
    message already handled and does nothing."""
    message_send(message_id=message_id)


@shared_task(ignore_result=True)
def reconcile_messages_task(message_ids: list[int] | None = None) -> None:
    """Ask the providers about ``unknown`` messages (all due ones, or only ``message_ids``).
    Idempotent: a settled message is no longer ``unknown`` and is not looked at again."""
    messages_reconcile(now=timezone.now(), message_ids=message_ids)
