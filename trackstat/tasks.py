"""Celery tasks of the tenancy core."""

from __future__ import annotations

from celery import shared_task

from trackstat.webhook_send import webhook_deliveries_send_due


@shared_task(ignore_result=True)
def send_webhook_deliveries_task() -> dict:
    """Outbound webhooks due now (DESIGN §4.1.1); beat runs it every minute."""
    return webhook_deliveries_send_due()
