"""Keep the report roll-ups (``reports.models``) up to date as messages change.

Every status transition of a message sets ``report_pending``; so does an unsubscribe
attributed to it, and a goal met sets it on the enrollment. A message's mark queues it
(``reports.queue``: a database trigger adds a ``PendingMessage`` row in the marking
transaction). ``rollups_refresh`` takes the queue in batches, oldest first, deleting the rows
it takes; a change committed meanwhile is a new queue row, which the next batch or run takes,
and a webhook never waits for the roll-up (the outbox row is neither locked nor rewritten).
It works out which report facts each message now has and adds only the new ones to the
counters. A fact is counted at most once per message (``MessageFacts`` remembers which), so
duplicate and out-of-order webhook events, and running the roll-up at any moment, give the
same numbers. Facts come from every status the message ever reached (its events), not only
the current one: a click that arrived before the open still counts the open.

One roll-up runs at a time (the ``RollupState`` row is locked); another that finds it busy
returns at once and the next run picks up what is left.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import Counter, defaultdict
from collections.abc import Iterable

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, Max, OuterRef
from django.utils import timezone

from campaigns.models import Enrollment
from messaging.models import SENT_STATUSES, MessageEvent, MessageStatus, OutboundMessage
from reports import bulk, rollup_sql
from reports.attribution import arm_messages_count, experiment_enrollments_count
from reports.bulk import ids_clause
from reports.models import (
    NO_PREV_DAY,
    NO_STEP,
    CampaignDayStat,
    MessageFacts,
    PendingMessage,
    RecipientDay,
    RecipientDayStat,
    RollupState,
    SkipDayStat,
)
from trackstat.models import Practice

BATCH = 2000
# On PostgreSQL a batch is one statement (``reports.rollup_sql``): larger batches cost less
# (a backfill of 1,000,000 messages: 17,200 rows/s by 20,000, 18,300-18,900 by 50,000; since
# the recipient days are read and written in index order, about 25,000 by 50,000).
SET_WISE_BATCH = 50_000
ROLLUP_NAME = "reports"
# Messages still on their way out: nothing about them is final enough to count.
IN_FLIGHT = [MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.UNKNOWN]
GOAL_MET = "goal_met"


class Fact:
    """Report facts, as bits of ``MessageFacts.flags`` (plain ints: this runs per message)."""

    SENT = 1
    DELIVERED = 2
    OPENED = 4
    CLICKED = 8
    ERROR = 16
    BOUNCED = 32
    UNSUBSCRIBED = 64
    SKIPPED = 128  # skipped, canceled or expired: it never went out


# The counter each fact adds to.
FACT_COUNTERS = {
    Fact.SENT: "sent",
    Fact.DELIVERED: "delivered",
    Fact.OPENED: "opened",
    Fact.CLICKED: "clicked",
    Fact.ERROR: "errors",
    Fact.BOUNCED: "bounced",
    Fact.UNSUBSCRIBED: "unsubscribed",
    Fact.SKIPPED: "skipped",
}
COUNTERS = [*FACT_COUNTERS.values(), "conversions"]

NOT_SENT = (MessageStatus.SKIPPED, MessageStatus.CANCELED, MessageStatus.EXPIRED)
_STATUS_FACTS: dict[str, int] = {
    MessageStatus.SENT: Fact.SENT,
    MessageStatus.DELIVERED: Fact.SENT | Fact.DELIVERED,
    MessageStatus.UNDELIVERED: Fact.SENT | Fact.ERROR,
    # Failed before the provider accepted it (a provider error), or reported failed after.
    MessageStatus.FAILED: Fact.ERROR,
    MessageStatus.DROPPED: Fact.ERROR,
    MessageStatus.BOUNCED: Fact.SENT | Fact.BOUNCED,
    MessageStatus.OPENED: Fact.SENT | Fact.DELIVERED | Fact.OPENED,
    MessageStatus.CLICKED: Fact.SENT | Fact.DELIVERED | Fact.CLICKED,
    MessageStatus.SPAM: Fact.SENT | Fact.DELIVERED,
    MessageStatus.SKIPPED: Fact.SKIPPED,
    MessageStatus.CANCELED: Fact.SKIPPED,
    MessageStatus.EXPIRED: Fact.SKIPPED,
}


def message_facts(*, channel: str, statuses: Iterable[str], unsubscribed: bool) -> int:
    """The report facts of a message that reached ``statuses`` (in any order)."""
    facts = 0
    for status in statuses:
        facts |= _STATUS_FACTS.get(status, 0)
    if facts & Fact.CLICKED and channel == "email":
        facts |= Fact.OPENED  # a click in an email means it was opened (images off or not)
    if unsubscribed:
        facts |= Fact.UNSUBSCRIBED
    return facts


def report_day(*, sent_at: dt.datetime | None, scheduled_for: dt.datetime, tz) -> dt.date:
    """The local day a message counts on: the day it was sent, else the day it was due."""
    return (sent_at or scheduled_for).astimezone(tz).date()


def set_wise() -> bool:
    """Whether batches run as set-based SQL (PostgreSQL) or message by message (elsewhere)."""
    return connection.vendor == "postgresql"


def rollups_refresh(*, batch: int | None = None) -> int:
    """Count everything pending into the roll-ups; return how many rows were counted.

    Returns 0 at once when another roll-up is running (it, or the next run, counts the rest).
    """
    if batch is None:
        batch = SET_WISE_BATCH if set_wise() else BATCH
    total = 0
    while True:
        done = _refresh_batch(batch)
        if done is None:
            return total
        total += done
        if done < batch:
            return total


def _lock_state() -> RollupState | None:
    """Lock the roll-up's row (creating it the first time); None if another run holds it."""
    state = RollupState.objects.select_for_update(skip_locked=True).filter(name=ROLLUP_NAME).first()
    if state is not None:
        return state
    if RollupState.objects.filter(name=ROLLUP_NAME).exists():
        return None  # held by another run
    try:
        with transaction.atomic():
            RollupState.objects.create(name=ROLLUP_NAME)
    except IntegrityError:
        return None  # another run created it just now
    return RollupState.objects.select_for_update(skip_locked=True).filter(name=ROLLUP_NAME).first()


@transaction.atomic
def _refresh_batch(limit: int) -> int | None:
    state = _lock_state()
    if state is None:
        return None
    if set_wise():
        enrollments = rollup_sql.conversions_count(
            limit=limit, goal_met=GOAL_MET, counters=COUNTERS
        )
        # Experiment enrollments into their arms first: their messages count there too.
        experiments = [e for e in enrollments if e["experiment_period"] is not None]
        if experiments:
            zones = {
                pk: zoneinfo.ZoneInfo(name)
                for pk, name in Practice.objects.filter(
                    pk__in={e["practice_id"] for e in experiments}
                ).values_list("pk", "time_zone")
            }
            experiment_enrollments_count(experiments, zones)
        taken, arm_facts = rollup_sql.messages_count(
            limit=limit,
            in_flight=IN_FLIGHT,
            fact=Fact,
            counters=FACT_COUNTERS,
            status_facts=_STATUS_FACTS,
        )
        arm_messages_count(arm_facts)
        done = max(taken, len(enrollments))
        state.refreshed_at = timezone.now()
        state.save(update_fields=["refreshed_at"])
        return done
    claimed = list(
        PendingMessage.objects.select_for_update(skip_locked=True)
        .filter(
            ~Exists(OutboundMessage.objects.filter(pk=OuterRef("message_id"), status__in=IN_FLIGHT))
        )
        .order_by("id")
        .values_list("id", "message_id")[:limit]
    )
    messages = _messages_claim(claimed)
    enrollments = list(
        Enrollment.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(report_pending=True)
        .order_by("id")
        .values(
            "id", "practice_id", "campaign_id", "exit_reason", "exited_at", "experiment_period"
        )[:limit]
    )
    if not claimed and not enrollments:
        state.refreshed_at = timezone.now()
        state.save(update_fields=["refreshed_at"])
        return 0
    zones = {
        pk: zoneinfo.ZoneInfo(name)
        for pk, name in Practice.objects.filter(
            pk__in={m["practice_id"] for m in messages} | {e["practice_id"] for e in enrollments}
        ).values_list("pk", "time_zone")
    }
    counters: dict[tuple[int, int, int, dt.date], Counter] = defaultdict(Counter)
    skips: Counter = Counter()
    # Experiment enrollments into their arms first: their messages count there too.
    experiment_enrollments_count(enrollments, zones)
    _count_messages(messages, zones, counters, skips)
    _count_conversions(enrollments, zones, counters)
    _counters_add(counters)
    _skips_add(skips)
    state.refreshed_at = timezone.now()
    state.save(update_fields=["refreshed_at"])
    return max(len(claimed), len(enrollments))


def _messages_claim(claimed: list[tuple[int, int]]) -> list[dict]:
    """Take ``claimed`` (queue row id, message id) off the queue; return their messages (each
    once, however often it was queued) with what was counted of them before."""
    if not claimed:
        return []
    for start in range(0, len(claimed), BATCH):
        PendingMessage.objects.filter(
            pk__in=[pk for pk, _ in claimed[start : start + BATCH]]
        ).delete()
    ids = sorted({message_id for _, message_id in claimed})
    messages = list(
        OutboundMessage.objects.filter(pk__in=ids, is_test=False, campaign__isnull=False)
        .order_by("id")
        .values(
            "id",
            "practice_id",
            "campaign_id",
            "step_position",
            "patient_id",
            "channel",
            "status",
            "status_reason",
            "sent_at",
            "scheduled_for",
            "unsubscribed_at",
            "enrollment_id",
        )
    )
    counted = {
        pk: (flags, day)
        for pk, flags, day in MessageFacts.objects.filter(message_id__in=ids).values_list(
            "message_id", "flags", "day"
        )
    }
    for m in messages:
        m["report_flags"], m["report_day"] = counted.get(m["id"], (0, None))
    return messages


def _count_messages(messages: list[dict], zones, counters, skips) -> None:
    if not messages:
        return
    reached: dict[int, set[str]] = defaultdict(set)
    where, params = ids_clause("message_id", [m["id"] for m in messages])
    events = MessageEvent._meta.db_table
    for message_id, status in bulk.select(
        f"SELECT message_id, status FROM {events} WHERE {where}",  # noqa: S608
        params,
    ):
        reached[message_id].add(status)
    updates: list[tuple[int, int, dt.date | None]] = []
    recipients: dict[tuple[int, int, int, int], set[dt.date]] = defaultdict(set)
    arm_facts: list[tuple[int, bool, bool, bool]] = []
    for m in messages:
        old = m["report_flags"]
        facts = old | message_facts(
            channel=m["channel"],
            statuses=reached[m["id"]] | {m["status"]},
            unsubscribed=m["unsubscribed_at"] is not None,
        )
        new = facts & ~old
        day = m["report_day"]
        if new and day is None:
            day = report_day(
                sent_at=m["sent_at"],
                scheduled_for=m["scheduled_for"],
                tz=zones[m["practice_id"]],
            )
        if not new:
            continue
        updates.append((m["id"], facts, day))
        step = m["step_position"] or NO_STEP
        key = (m["practice_id"], m["campaign_id"], step, day)
        for fact, counter in FACT_COUNTERS.items():
            if new & fact:
                counters[key][counter] += 1
        if new & Fact.SKIPPED:
            skips[(*key, m["status"], m["status_reason"][:200])] += 1
        if m["enrollment_id"] and new & (Fact.SENT | Fact.DELIVERED | Fact.CLICKED):
            arm_facts.append(
                (
                    m["enrollment_id"],
                    bool(new & Fact.SENT),
                    bool(new & Fact.DELIVERED),
                    bool(new & Fact.CLICKED),
                )
            )
        if new & Fact.SENT and m["patient_id"] is not None:
            levels = {NO_STEP, step}
            for level in levels:
                recipients[(m["practice_id"], m["campaign_id"], level, m["patient_id"])].add(day)
    _messages_mark_counted(updates)
    _recipient_days_add(recipients)
    arm_messages_count(arm_facts)


def _messages_mark_counted(updates: list[tuple[int, int, dt.date | None]]) -> None:
    """Store the facts and day of each message that has new ones, in one statement."""
    bulk.rows_insert(
        MessageFacts._meta.db_table,
        ["message_id", "flags", "day"],
        ["bigint", "integer", "date"],
        updates,
        on_conflict="ON CONFLICT (message_id) DO UPDATE SET flags = excluded.flags, "
        "day = excluded.day",
    )


def _count_conversions(enrollments: list[dict], zones, counters) -> None:
    """A goal met counts once, on the local day it was met, for the last step that went out
    before it (step 0 if none had)."""
    if not enrollments:
        return
    goals = [e for e in enrollments if e["exit_reason"] == GOAL_MET and e["exited_at"]]
    last_step = _last_sent_steps([e["id"] for e in goals])
    for e in goals:
        day = e["exited_at"].astimezone(zones[e["practice_id"]]).date()
        step = last_step.get(e["id"], NO_STEP)
        counters[(e["practice_id"], e["campaign_id"], step, day)]["conversions"] += 1
    bulk.rows_update(
        Enrollment._meta.db_table,
        ["id", "report_pending"],
        ["bigint", "boolean"],
        [(e["id"], False) for e in enrollments],
    )


def _last_sent_steps(enrollment_ids: list[int]) -> dict[int, int]:
    if not enrollment_ids:
        return {}
    return dict(
        OutboundMessage.objects.filter(
            enrollment_id__in=enrollment_ids, status__in=SENT_STATUSES, is_test=False
        )
        .values("enrollment_id")
        .annotate(step=Max("step_position"))
        .values_list("enrollment_id", "step")
    )


def _counters_add(counters: dict[tuple[int, int, int, dt.date], Counter]) -> None:
    """Add to the day counters in one ``INSERT … ON CONFLICT DO UPDATE``."""
    table = CampaignDayStat._meta.db_table
    updates = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in COUNTERS)
    bulk.rows_insert(
        table,
        ["practice_id", "campaign_id", "step_position", "day", *COUNTERS],
        ["bigint", "bigint", "smallint", "date", *(["integer"] * len(COUNTERS))],
        [(*key, *(counters[key][name] for name in COUNTERS)) for key in sorted(counters)],
        on_conflict=f"ON CONFLICT (campaign_id, step_position, day) DO UPDATE SET {updates}",
    )


def _skips_add(skips: Counter) -> None:
    table = SkipDayStat._meta.db_table
    bulk.rows_insert(
        table,
        ["practice_id", "campaign_id", "step_position", "day", "status", "reason", "count"],
        ["bigint", "bigint", "smallint", "date", "text", "text", "integer"],
        [(*key, skips[key]) for key in sorted(skips)],
        on_conflict="ON CONFLICT (campaign_id, step_position, day, status, reason) "
        f"DO UPDATE SET count = {table}.count + excluded.count",
    )


def _recipient_days_add(recipients: dict[tuple[int, int, int, int], set[dt.date]]) -> None:
    """Record new (campaign, level, patient, day) rows and keep every ``prev_day`` right: a
    day that arrives between two known days becomes the later one's previous day."""
    if not recipients:
        return
    pairs = sorted({(campaign, patient) for _, campaign, _, patient in recipients})
    existing: dict[tuple[int, int, int], list[tuple[dt.date, dt.date | None, int]]] = defaultdict(
        list
    )
    table = RecipientDay._meta.db_table
    columns = "r.campaign_id, r.step_position, r.patient_id, r.day, r.prev_day, r.id"
    if connection.vendor == "postgresql":
        # The batch's (campaign, patient) pairs joined in: index probes on the unique
        # (campaign, patient, …) index, whatever the planner's idea of the table's size.
        sql = (
            f"SELECT {columns} FROM unnest(%s::bigint[], %s::bigint[]) AS k(campaign_id, "  # noqa: S608
            f"patient_id) JOIN {table} r ON r.campaign_id = k.campaign_id "
            "AND r.patient_id = k.patient_id"
        )
        params = [[c for c, _ in pairs], [p for _, p in pairs]]
    else:
        campaigns_where, campaign_params = ids_clause(
            "r.campaign_id", sorted({c for c, _ in pairs})
        )
        patients_where, patient_params = ids_clause("r.patient_id", sorted({p for _, p in pairs}))
        sql = f"SELECT {columns} FROM {table} r WHERE {campaigns_where} AND {patients_where}"  # noqa: S608
        params = campaign_params + patient_params
    for campaign_id, level, patient_id, day, prev_day, pk in bulk.select(sql, params):
        if isinstance(day, str):  # SQLite
            day = dt.date.fromisoformat(day)
            prev_day = dt.date.fromisoformat(prev_day) if prev_day else None
        existing[(campaign_id, level, patient_id)].append((day, prev_day, pk))
    created: list[tuple] = []
    changed: list[tuple[int, dt.date | None]] = []
    gaps: Counter = Counter()
    for (practice_id, campaign_id, level, patient_id), days in recipients.items():
        known = {day: (prev, pk) for day, prev, pk in existing[(campaign_id, level, patient_id)]}
        previous = None
        for day in sorted(days | known.keys()):
            if day not in known:
                created.append((practice_id, campaign_id, level, patient_id, day, previous))
                gaps[(practice_id, campaign_id, level, day, previous or NO_PREV_DAY)] += 1
            elif known[day][0] != previous:
                changed.append((known[day][1], previous))
                gaps[(practice_id, campaign_id, level, day, known[day][0] or NO_PREV_DAY)] -= 1
                gaps[(practice_id, campaign_id, level, day, previous or NO_PREV_DAY)] += 1
            previous = day
    bulk.rows_insert(
        table,
        ["practice_id", "campaign_id", "step_position", "patient_id", "day", "prev_day"],
        ["bigint", "bigint", "smallint", "bigint", "date", "date"],
        created,
    )
    bulk.rows_update(table, ["id", "prev_day"], ["bigint", "date"], changed)
    stats = RecipientDayStat._meta.db_table
    bulk.rows_insert(
        stats,
        ["practice_id", "campaign_id", "step_position", "day", "prev_day", "count"],
        ["bigint", "bigint", "smallint", "date", "date", "integer"],
        [(*key, gaps[key]) for key in sorted(gaps) if gaps[key]],
        on_conflict="ON CONFLICT (campaign_id, step_position, day, prev_day) "
        f"DO UPDATE SET count = {stats}.count + excluded.count",
    )
