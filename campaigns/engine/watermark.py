"""Continuous triggers evaluated by what changed (issue 20; docs/engine-watermark.md).

Evaluating every continuous campaign's audience at every tick is correct but costs one
audience query per campaign and tick, though almost nothing changes in a minute. A patient's
answer to a continuous campaign can only change when

1. a *moment* crosses: an appointment of theirs today starts, its ``start + delay`` (missed)
   or ``checked_in_at + delay`` (visit) passes. The moments are taken in ``(watermark, now]``,
   the watermark being how far the campaign was evaluated (``ContinuousEvaluation``);
2. their EMR data changes (patient, appointment, tag, case, diagnosis, service): the change
   log ``PatientChange`` (PostgreSQL triggers, written in the changing transaction);
3. the campaign itself changes, or a new local day begins: evaluated from scratch.

So a tick evaluates each continuous campaign either *in full* (``Plan.full``) or only for the
patients of (1) and (2) (``Plan.patients``); a campaign with neither is not run at all. The
rules that are not incremental fall back to a full evaluation (``full_reason``). The outcome
is the same as evaluating everything at every tick: same patients, same occurrences, same
tick (``tests/campaigns/test_watermark.py`` checks it on random days of EMR changes).

``settings.CONTINUOUS_FULL_EVALUATION = True`` (or SQLite, which has no change log) evaluates
every continuous campaign in full at every tick.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction

from campaigns.audience.triggers import NOT_MISSED_STATUSES
from campaigns.engine.heads import Head as _Head
from campaigns.language.triggers import TRIGGERS, continuous_of
from campaigns.models import Campaign, ContinuousEvaluation, Enrollment, PatientChange
from patients.models import VISIT_STATUSES, Appointment


def incremental() -> bool:
    """Whether continuous campaigns may be evaluated by what changed (PostgreSQL only)."""
    return connection.vendor == "postgresql" and not settings.CONTINUOUS_FULL_EVALUATION


def version_of(head: _Head) -> str:
    """What must be unchanged for a campaign's earlier evaluation to still hold."""
    enabled = head.enabled_at.isoformat() if head.enabled_at else ""
    updated = head.updated_at.isoformat() if head.updated_at else ""
    return f"{updated}|{enabled}"


def full_reason(head: _Head, *, evaluated, today, now, practice_changed) -> str:
    """Why this continuous campaign is evaluated in full at this tick ('' when it need not
    be). The list of what is not incremental: a campaign not evaluated today in this version
    (new, enabled or edited since, or a new local day: age, "today"), ``exclude_recent_days``
    (messages and enrollments of other drips leave its window as time passes), the watermark
    missing, before the local day's start (a paused scheduler) or after ``now`` (a tick back in
    time), and a renamed tag or lookup of the practice."""
    if evaluated is None:
        return "not evaluated yet"
    version, local_date, watermark = evaluated
    if version != version_of(head):
        return "campaign enabled or edited"
    if local_date != today:
        return "new local day"
    if head.exclude_recent_days:
        return "exclude_recent_days"
    if watermark > now:
        return "tick before the watermark"
    if watermark < dt.datetime.combine(today, dt.time(0, 0), tzinfo=head.tz):
        return "watermark before the local day"
    if practice_changed:
        return "practice renamed a tag or lookup"
    return ""


@dataclass
class Plan:
    """What a tick evaluates of its continuous campaigns and how, and what it then records."""

    now: dt.datetime
    full: set[int] = field(default_factory=set)
    patients: dict[int, list[int]] = field(default_factory=dict)
    versions: dict[int, tuple[str, dt.date]] = field(default_factory=dict)
    narrowed: list[int] = field(default_factory=list)
    change_ids: list[int] = field(default_factory=list)
    todays: dict[int, dt.date] = field(default_factory=dict)
    log_nonempty: bool = False
    bookkeeping: bool = False

    def runs(self, pk: int) -> bool:
        return pk in self.full or bool(self.patients.get(pk))

    def narrowed_to(self, pk: int) -> list[int] | None:
        """The patients to evaluate ``pk`` for; None: all of them."""
        return None if pk in self.full else self.patients.get(pk, [])

    def finish(self) -> None:
        """Record the tick: the campaigns evaluated in full (their version and day), every
        campaign's watermark moved up to ``now``, the change log rows read deleted.
        Only once every campaign ran: a tick that fails is redone from the old watermark, and
        the unique occurrence key keeps that harmless."""
        if not self.bookkeeping:
            return
        with transaction.atomic():
            if self.versions:
                ContinuousEvaluation.objects.bulk_create(
                    [
                        ContinuousEvaluation(
                            campaign_id=pk,
                            version=version,
                            local_date=day,
                            evaluated_until=self.now,
                        )
                        for pk, (version, day) in self.versions.items()
                    ],
                    update_conflicts=True,
                    unique_fields=["campaign"],
                    update_fields=["version", "local_date", "evaluated_until"],
                )
            # Never back: of two ticks at once, the later instant stays.
            if self.narrowed:
                ContinuousEvaluation.objects.filter(
                    campaign_id__any=self.narrowed, evaluated_until__lt=self.now
                ).update(evaluated_until=self.now)
            if self.log_nonempty:
                _changes_delete(self.change_ids, self.todays)


def plan(continuous: list[_Head], now: dt.datetime) -> Plan:
    """How each of these continuous campaigns is evaluated at ``now``."""
    result = Plan(now=now)
    if not incremental():
        result.full = {h.pk for h in continuous}
        return result
    result.bookkeeping = True
    result.todays = {h.practice_id: now.astimezone(h.tz).date() for h in continuous}
    # The log is read before anything is evaluated: a change that commits later stays in it
    # for the next tick.
    changes, result.log_nonempty = _changes_read(result.todays)
    result.change_ids = [pk for pk, _practice, _patient in changes]
    changed_practices = {p for _pk, p, patient in changes if patient is None}
    changed = [patient for _pk, _p, patient in changes if patient is not None]
    if not continuous:
        return result
    evaluated = {
        pk: (version, day, until)
        for pk, version, day, until in ContinuousEvaluation.objects.filter(
            campaign_id__any=[h.pk for h in continuous]
        ).values_list("campaign_id", "version", "local_date", "evaluated_until")
    }
    narrowed = []
    for head in continuous:
        today = now.astimezone(head.tz).date()
        reason = full_reason(
            head,
            evaluated=evaluated.get(head.pk),
            today=today,
            now=now,
            practice_changed=head.practice_id in changed_practices,
        )
        if reason:
            result.full.add(head.pk)
            result.versions[head.pk] = (version_of(head), today)
        else:
            narrowed.append((head, today, evaluated[head.pk][2]))
            result.narrowed.append(head.pk)
    result.patients = _crossed_or_changed(narrowed, now, changed)
    return result


def _crossed_or_changed(
    narrowed: list[tuple[_Head, dt.date, dt.datetime]], now: dt.datetime, changed: list[int]
) -> dict[int, list[int]]:
    """Per campaign, the patients with an appointment today of which a moment crossed in
    (watermark, now] (its start; its start or check-in plus the campaign's delay) or whose
    data changed, and who have an occurrence of the trigger that has not entered the campaign
    (filters left out: a superset of whom a full evaluation would enroll). One statement for
    all campaigns (they travel as arrays), through the appointments' (practice, local date)
    index."""
    if not narrowed:
        return {}
    rows = []
    for head, today, watermark in narrowed:
        how = continuous_of(head.trigger)
        delay = how.delay_of(head.trigger)
        rows.append(
            (head.pk, head.practice_id, how.event, today, watermark, watermark - delay, now - delay)
        )
    columns = [list(column) for column in zip(*rows, strict=True)]
    appointments = Appointment._meta.db_table
    enrollments = Enrollment._meta.db_table
    # Each practice's appointments of its local today are read once ("day", through the
    # (practice, local date) index) and joined in memory, both as the appointment whose
    # moment crossed (a) and as the patient's occurrence of the trigger (t). Read per
    # campaign and per candidate instead (an index scan of the practice's day for every
    # appointment whose moment crossed), the same rows came from shared buffers some 40 times
    # over: 80 ms of a continuous tick at 200 practices, and of every re-tick.
    sql = f"""
        WITH v AS MATERIALIZED (
            SELECT * FROM unnest(%(ids)s::bigint[], %(practices)s::bigint[], %(kinds)s::text[],
                    %(days)s::date[], %(watermarks)s::timestamptz[], %(lows)s::timestamptz[],
                    %(highs)s::timestamptz[])
                AS v(campaign_id, practice_id, kind, today, watermark, low, high)
        ), day AS MATERIALIZED (
            SELECT a.id, a.practice_id, a.local_date, a.patient_id, a.start, a.status,
                a.checked_in_at
            FROM (SELECT DISTINCT practice_id, today FROM v) AS d
            JOIN {appointments} a ON a.practice_id = d.practice_id AND a.local_date = d.today
        )
        SELECT DISTINCT v.campaign_id, a.patient_id
        FROM v
        JOIN day a ON a.practice_id = v.practice_id AND a.local_date = v.today
        JOIN day t ON t.patient_id = a.patient_id AND t.practice_id = v.practice_id
            AND t.local_date = v.today
        WHERE (
            (a.start > v.watermark AND a.start <= %(now)s)
            OR (a.start > v.low AND a.start <= v.high)
            OR (a.checked_in_at > v.low AND a.checked_in_at <= v.high)
            OR a.patient_id = ANY(%(changed)s::bigint[])
        ) AND (
            (v.kind = 'missed' AND t.start <= v.high AND NOT (t.status = ANY(%(not_missed)s)))
            OR (v.kind = 'visit' AND t.status = ANY(%(visits)s) AND t.start <= %(now)s
                AND (t.checked_in_at <= v.high
                     OR (t.checked_in_at IS NULL AND t.start <= v.high)))
        ) AND NOT EXISTS (
            SELECT 1 FROM {enrollments} e
            WHERE e.campaign_id = v.campaign_id AND e.patient_id = t.patient_id
                AND e.occurrence_key = 'appointment:' || t.id
        )
    """  # noqa: S608
    names = ["ids", "practices", "kinds", "days", "watermarks", "lows", "highs"]
    params = dict(zip(names, columns, strict=True)) | {
        "now": now,
        "changed": sorted(set(changed)),
        "not_missed": list(NOT_MISSED_STATUSES),
        "visits": list(VISIT_STATUSES),
    }
    patients: dict[int, list[int]] = defaultdict(list)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for campaign_id, patient_id in cursor.fetchall():
            patients[campaign_id].append(patient_id)
    return dict(patients)


# A change-log row that matters: of a practice with a continuous campaign, about the whole
# practice or about a patient with an appointment on the practice's local today (every
# continuous trigger is about one; "v" holds the practices and their todays).
_RELEVANT_SQL = """
    l.patient_id IS NULL OR EXISTS (
        SELECT 1 FROM {appointments} a
        WHERE a.patient_id = l.patient_id AND a.local_date = v.today
    )
"""


def _changes_read(todays: dict[int, dt.date]) -> tuple[list[tuple[int, int, int | None]], bool]:
    """The change-log rows that matter at this tick, (id, practice, patient or None), and
    whether the log holds any row at all (if not, there is nothing to delete)."""
    if not todays:
        return [], True
    log = PatientChange._meta.db_table
    relevant = _RELEVANT_SQL.format(appointments=Appointment._meta.db_table)
    # The last row (all NULL) only says the log is not empty.
    sql = f"""
        SELECT l.id, l.practice_id, l.patient_id
        FROM {log} l
        JOIN unnest(%s::bigint[], %s::date[]) AS v(practice_id, today)
            ON v.practice_id = l.practice_id
        WHERE {relevant}
        UNION ALL SELECT NULL, NULL, NULL WHERE EXISTS (SELECT 1 FROM {log})
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [list(todays), list(todays.values())])
        rows = list(cursor.fetchall())
    return [row for row in rows if row[0] is not None], len(rows) > 0


def _continuous_campaign_sql() -> tuple[str, list]:
    """SQL (on campaign "c") for an enabled drip with a continuous trigger, from the trigger
    table: a type that is continuous, or a type and the ``when`` that makes it one."""
    conditions, params = [], []
    for row in TRIGGERS.values():
        if row.continuous:
            conditions.append("c.trigger->>'type' = %s")
            params.append(row.name)
        for mode in row.modes:
            if mode.continuous:
                conditions.append("(c.trigger->>'type' = %s AND c.trigger->>'when' = %s)")
                params += [row.name, mode.name]
    sql = f"c.enabled AND c.kind = 'drip' AND ({' OR '.join(conditions) or 'false'})"
    return sql, params


def _changes_delete(read: list[int], todays: dict[int, dt.date]) -> None:
    """Delete the rows read, and the rows that do not matter (now): of a practice without an
    enabled continuous campaign, or, at the practices of this tick, about a patient without
    an appointment today. Those can be dropped unread, even one that committed after the read:
    a patient without an appointment today matches no continuous trigger, and the appointment
    that would make them match writes a row of its own; a campaign enabled later is evaluated
    in full. Rows of other practices' continuous campaigns (another tick's) stay. After a bulk
    load (every patient and appointment logged) this empties the log in one statement."""
    relevant = _RELEVANT_SQL.format(appointments=Appointment._meta.db_table)
    continuous, continuous_params = _continuous_campaign_sql()
    sql = f"""
        DELETE FROM {PatientChange._meta.db_table} l
        WHERE l.id = ANY(%s::bigint[])
        OR EXISTS (
            SELECT 1 FROM unnest(%s::bigint[], %s::date[]) AS v(practice_id, today)
            WHERE v.practice_id = l.practice_id AND NOT ({relevant})
        )
        OR NOT EXISTS (
            SELECT 1 FROM {Campaign._meta.db_table} c
            WHERE c.practice_id = l.practice_id AND {continuous}
        )
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [read, list(todays), list(todays.values()), *continuous_params])
