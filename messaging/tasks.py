"""Celery tasks of the messaging app: thin callers of the send service."""

from __future__ import annotations

from celery import shared_task

from campaigns.engine import message_send


@shared_task(ignore_result=True)
def send_message_task(message_id: int) -> None:
    """Send one claimed outbox message. Idempotent: a redelivered or duplicate task finds the
    message already handled and does nothing."""
    message_send(message_id=message_id)
