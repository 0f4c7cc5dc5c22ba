"""Celery tasks of the campaigns app: thin callers of the engine."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.utils import timezone

from campaigns.engine import TickSummary, tick_group
from campaigns.engine.groups import tick_groups

# A group's tick not started this long after beat's instant is dropped: the next minute's
# covers its work (due work waits in the database, never in the broker).
GROUP_TASK_EXPIRES = 55


@shared_task(bind=True, ignore_result=False)
def run_tick_task(self) -> dict:
    """Beat sends this every minute: it fans the tick at this instant out into one task per
    group of practices (``TICK_GROUPS``), which the workers run side by side. Each task gets
    only its group number and the instant. A redelivery enqueues the groups again: harmless,
    a group's tick is idempotent.

    The group tasks go to the queue this task came from (its routing key), so a worker
    listening on another queue (the tests') runs them too.
    """
    now = timezone.now()
    groups = tick_groups()
    queue = (self.request.delivery_info or {}).get("routing_key") or None
    for group in range(groups):
        run_tick_group_task.apply_async(
            args=[group, now.isoformat()],
            queue=queue,
            expires=now + dt.timedelta(seconds=GROUP_TASK_EXPIRES),
        )
    return {"now": now.isoformat(), "groups": groups}


@shared_task(ignore_result=False)
def run_tick_group_task(group: int, now: str) -> TickSummary:
    """One group's tick at beat's instant ``now`` (ISO 8601), its claimed messages handed to
    the send tasks."""
    return tick_group(group=group, now=dt.datetime.fromisoformat(now), send="queue")
