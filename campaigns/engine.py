"""The drip engine: one scheduler tick is a function of the database and an instant ``now``.

The steps of DESIGN §6 (run due campaigns, apply goals and opt-outs, materialize due steps, hand
due messages to the send queue) are filled in by the engine issue; until then a tick evaluates
nothing and only records its heartbeat, so the wiring (beat → worker → database) is real.
"""

from __future__ import annotations

import datetime as dt
from typing import TypedDict

from django.db import transaction
from django.utils import timezone

from campaigns.models import SchedulerHeartbeat


class TickSummary(TypedDict):
    now: str
    campaigns_run: int
    enrollments_created: int
    messages_created: int
    messages_queued: int


def tick(*, now: dt.datetime) -> TickSummary:
    """Run one scheduler tick at the instant ``now`` (aware). Idempotent."""
    if timezone.is_naive(now):
        raise ValueError("tick() needs an aware datetime for now.")
    summary: TickSummary = {
        "now": now.isoformat(),
        "campaigns_run": 0,
        "enrollments_created": 0,
        "messages_created": 0,
        "messages_queued": 0,
    }
    with transaction.atomic():
        SchedulerHeartbeat.objects.update_or_create(
            name="tick",
            defaults={"ticked_at": now, "finished_at": timezone.now(), "summary": summary},
        )
    return summary
