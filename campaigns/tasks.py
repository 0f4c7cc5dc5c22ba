"""Celery tasks of the campaigns app: thin callers of the engine."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from campaigns.engine import TickSummary, tick


@shared_task(ignore_result=False)
def run_tick_task() -> TickSummary:
    """Beat sends this every minute; the tick is idempotent, so a redelivery is harmless."""
    return tick(now=timezone.now(), send="queue")
