"""The Celery app. The beat schedule is defined here, once, in code."""

from __future__ import annotations

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trackstat.settings")

app = Celery("trackstat")
app.config_from_object("django.conf:settings", namespace="CELERY")

# Due times live in the database, never in ETA/countdown, so late acknowledgement plus
# prefetch 1 is safe: a task whose worker dies is redelivered, and the tasks are idempotent.
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=3600,
    timezone="UTC",
    enable_utc=True,
    broker_connection_retry_on_startup=True,
    beat_schedule={
        "scheduler-tick": {
            "task": "campaigns.tasks.run_tick_task",
            "schedule": crontab(minute="*"),
            # A tick older than a minute is superseded by the next one.
            "options": {"expires": 55},
        },
        # Report roll-ups catch up with message events (DESIGN §8).
        "refresh-report-rollups": {
            "task": "reports.tasks.refresh_rollups_task",
            "schedule": 15.0,
            "options": {"expires": 14},
        },
        # Webhook events still unprocessed after a short while (their task was lost or the
        # broker was down when they arrived) are applied from the table.
        "sweep-webhook-events": {
            "task": "messaging.tasks.sweep_webhook_events_task",
            "schedule": 30.0,
            "options": {"expires": 25},
        },
        # Outbound webhooks to EMR connectors, due in the database (DESIGN §4.1.1).
        "send-webhook-deliveries": {
            "task": "trackstat.tasks.send_webhook_deliveries_task",
            "schedule": crontab(minute="*"),
            "options": {"expires": 55},
        },
        "reconcile-messages": {
            "task": "messaging.tasks.reconcile_messages_task",
            "schedule": crontab(minute="*/5"),
            "options": {"expires": 280},
        },
    },
)


app.autodiscover_tasks()
