"""The drip engine: one scheduler tick is a function of the database and an instant ``now``.

A tick (DESIGN §6) (1) runs due campaigns, enrolling their audiences set-wise; (2) applies
goals; (3) materializes due steps into outbound messages; (4) claims due messages and hands
them to the send queue (or sends them in process). Every step is idempotent and safe to run
concurrently with itself: due work is claimed with ``SELECT … FOR UPDATE SKIP LOCKED`` and
unique constraints hold the once-only rules.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, TypedDict

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from campaigns.engine.dispatch import messages_dispatch
from campaigns.engine.enroll import campaigns_run_due
from campaigns.engine.goals import goals_apply
from campaigns.engine.steps import steps_materialize
from campaigns.models import SchedulerHeartbeat
from messaging.models import SENT_STATUSES
from messaging.outbox.send import messages_send


class TickSummary(TypedDict):
    now: str
    campaigns_run: int
    enrollments_created: int
    goals_met: int
    messages_created: int
    messages_skipped: int
    messages_dispatched: int
    messages_sent: int


def tick(*, now: dt.datetime, send: Literal["queue", "inline"] = "queue") -> TickSummary:
    """Run one scheduler tick at the instant ``now`` (aware).

    ``send="queue"`` (beat) hands claimed messages to Celery send tasks, in batches of
    ``SEND_TASK_BATCH_SIZE``, as each practice's claim commits; ``send="inline"`` (``manage.py
    tick``, tests) sends them in this process.
    """
    if timezone.is_naive(now):
        raise ValueError("tick() needs an aware datetime for now.")
    campaigns_run, enrolled = campaigns_run_due(now=now)
    goals_met = goals_apply(now=now)
    created, skipped = steps_materialize(now=now)
    sent = 0
    if send == "inline":
        claimed = messages_dispatch(now=now)
        for message_id in claimed:
            # .get: a message whose row vanished meanwhile (its patient deleted) is not sent.
            statuses = messages_send(message_ids=[message_id], now=now)
            sent += statuses.get(message_id) in SENT_STATUSES
    else:
        claimed = messages_dispatch(now=now, on_claimed=_send_queue)
    summary: TickSummary = {
        "now": now.isoformat(),
        "campaigns_run": campaigns_run,
        "enrollments_created": enrolled,
        "goals_met": goals_met,
        "messages_created": created,
        "messages_skipped": skipped,
        "messages_dispatched": len(claimed),
        "messages_sent": sent,
    }
    with transaction.atomic():
        SchedulerHeartbeat.objects.update_or_create(
            name="tick",
            defaults={"ticked_at": now, "finished_at": timezone.now(), "summary": summary},
        )
    return summary


def _send_queue(message_ids: list[int]) -> None:
    """Hand claimed messages to the Celery send tasks, ``SEND_TASK_BATCH_SIZE`` a task."""
    from messaging.tasks import send_messages_task

    size = settings.SEND_TASK_BATCH_SIZE
    for start in range(0, len(message_ids), size):
        send_messages_task.delay(message_ids[start : start + size])


__all__ = ["TickSummary", "goals_apply", "tick"]
