"""The drip engine: one scheduler tick is a function of the database and an instant ``now``.

A tick (DESIGN §6) (1) runs due campaigns, enrolling their audiences set-wise; (2) applies
goals; (3) materializes due steps into outbound messages; (4) has the outbox claim due
messages and hand them to its send queue (or send them in process: ``messaging.outbox``).
Every step is idempotent and safe to run concurrently with itself: due work is claimed with
``SELECT … FOR UPDATE SKIP LOCKED`` and unique constraints hold the once-only rules.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, TypedDict

from django.db import transaction
from django.utils import timezone

from campaigns.engine.enroll import campaigns_run_due
from campaigns.engine.goals import goals_apply
from campaigns.engine.steps import steps_materialize
from campaigns.models import SchedulerHeartbeat
from messaging.send_queue import messages_send_due


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
    dispatched, sent = messages_send_due(now=now, send=send)
    summary: TickSummary = {
        "now": now.isoformat(),
        "campaigns_run": campaigns_run,
        "enrollments_created": enrolled,
        "goals_met": goals_met,
        "messages_created": created,
        "messages_skipped": skipped,
        "messages_dispatched": dispatched,
        "messages_sent": sent,
    }
    with transaction.atomic():
        SchedulerHeartbeat.objects.update_or_create(
            name="tick",
            defaults={"ticked_at": now, "finished_at": timezone.now(), "summary": summary},
        )
    return summary


__all__ = ["TickSummary", "goals_apply", "tick"]
