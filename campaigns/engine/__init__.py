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

from django.db import connection, transaction
from django.utils import timezone

from campaigns.engine.enroll import campaigns_run_due
from campaigns.engine.goals import goals_apply
from campaigns.engine.groups import group_practice_ids, tick_groups
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


# The counters of a summary, added up over the groups in the aggregate heartbeat.
COUNTERS = [key for key in TickSummary.__annotations__ if key != "now"]
# The advisory lock that serializes writers of the aggregate heartbeat.
HEARTBEAT_LOCK = 0x5453_4842


def tick(*, now: dt.datetime, send: Literal["queue", "inline"] = "queue") -> TickSummary:
    """Run one scheduler tick at the instant ``now`` (aware), for every practice, in this
    process (``manage.py tick``, tests); beat fans the same work out by group (``tick_group``).

    ``send="queue"`` hands claimed messages to Celery send tasks, in batches of
    ``SEND_TASK_BATCH_SIZE``, as each practice's claim commits; ``send="inline"`` (``manage.py
    tick``, tests) sends them in this process.
    """
    summary = _phases(now=now, send=send, practice_ids=None)
    with transaction.atomic():
        SchedulerHeartbeat.objects.update_or_create(
            name="tick",
            defaults={"ticked_at": now, "finished_at": timezone.now(), "summary": summary},
        )
    return summary


def tick_group(
    *, group: int, now: dt.datetime, send: Literal["queue", "inline"] = "queue"
) -> TickSummary:
    """The tick at ``now`` for the practices of one group (``campaigns.engine.groups``): what
    one of beat's per-group tasks runs. Every group's tick at the same ``now`` together does
    what ``tick`` does; running one twice, or twice at once, does it once (the phases claim
    with SKIP LOCKED and unique constraints hold the once-only rules).

    Records the group's heartbeat (``tick:<group>``) and moves the ``tick`` heartbeat to the
    newest instant every group has finished (``tick_heartbeat_aggregate``).
    """
    groups = tick_groups()
    practice_ids = group_practice_ids(group, groups=groups)
    summary = _phases(now=now, send=send, practice_ids=practice_ids)
    with transaction.atomic():
        SchedulerHeartbeat.objects.update_or_create(
            name=group_heartbeat_name(group),
            defaults={
                "ticked_at": now,
                "finished_at": timezone.now(),
                "summary": {**summary, "group": group, "practices": len(practice_ids)},
            },
        )
        tick_heartbeat_aggregate(groups=groups)
    return summary


def group_heartbeat_name(group: int) -> str:
    return f"tick:{group}"


def tick_heartbeat_aggregate(*, groups: int) -> None:
    """Move the ``tick`` heartbeat (``/healthz``'s ``last_tick``) to the oldest of the groups'
    last ticks: the newest instant at which every practice has been ticked. It only moves
    forward (a ``manage.py tick`` at a later instant covered every group too), and not at all
    until each group has ticked once; a group that stops ticking holds it back, so the health
    check sees a stuck worker. Its summary adds up each group's last tick.

    Writers are serialized (an advisory lock on PostgreSQL) so that two groups finishing at
    once cannot both write an aggregate that misses the other.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [HEARTBEAT_LOCK])
    rows = list(
        SchedulerHeartbeat.objects.filter(
            name__in=[group_heartbeat_name(g) for g in range(groups)]
        ).values_list("ticked_at", "summary")
    )
    if len(rows) < groups:
        return  # a group has never ticked: no instant covers every practice yet
    oldest = min(ticked_at for ticked_at, _ in rows)
    current = SchedulerHeartbeat.objects.filter(name="tick").values_list("ticked_at", flat=True)
    if current and current[0] >= oldest:
        return
    summary = {
        "now": oldest.isoformat(),
        "groups": groups,
        "newest_group_tick": max(ticked_at for ticked_at, _ in rows).isoformat(),
        **{key: sum(s.get(key, 0) for _, s in rows) for key in COUNTERS},
    }
    SchedulerHeartbeat.objects.update_or_create(
        name="tick",
        defaults={"ticked_at": oldest, "finished_at": timezone.now(), "summary": summary},
    )


def _phases(
    *, now: dt.datetime, send: Literal["queue", "inline"], practice_ids: list[int] | None
) -> TickSummary:
    """The four phases of a tick, for ``practice_ids`` (None: every practice)."""
    if timezone.is_naive(now):
        raise ValueError("tick() needs an aware datetime for now.")
    campaigns_run, enrolled = campaigns_run_due(now=now, practice_ids=practice_ids)
    goals_met = goals_apply(now=now, practice_ids=practice_ids)
    created, skipped = steps_materialize(now=now, practice_ids=practice_ids)
    dispatched, sent = messages_send_due(now=now, send=send, practice_ids=practice_ids)
    return {
        "now": now.isoformat(),
        "campaigns_run": campaigns_run,
        "enrollments_created": enrolled,
        "goals_met": goals_met,
        "messages_created": created,
        "messages_skipped": skipped,
        "messages_dispatched": dispatched,
        "messages_sent": sent,
    }


__all__ = ["TickSummary", "goals_apply", "tick", "tick_group"]
