"""Step 1 of a tick: run the campaigns that are due and enroll their audiences set-wise."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import Counter, defaultdict
from collections.abc import Collection

from django.db import IntegrityError, connection, transaction
from django.db.models import Case, Prefetch, Q, Value, When

from campaigns.audience.query import audience_candidates, new_occurrences_sql
from campaigns.audience.triggers import NOT_MISSED_STATUSES
from campaigns.engine import compiled, prepared, watermark
from campaigns.engine.durability import COMMIT_ASYNC_SQL, commit_async, may_commit_async
from campaigns.engine.heads import Head as _Head
from campaigns.engine.heads import campaign_heads
from campaigns.experiments.arms import arms_assign
from campaigns.language.spec import DEFAULT_SCHEDULE
from campaigns.language.triggers import MISSED_MINUTES, continuous_of, is_continuous
from campaigns.models import (
    Campaign,
    CampaignKind,
    CampaignRun,
    Enrollment,
    EnrollmentState,
    MessageStep,
)
from campaigns.schedule import due_day
from campaigns.timing import step_due
from patients.models import VISIT_STATUSES, Appointment


def campaigns_run_due(
    *, now: dt.datetime, practice_ids: Collection[int] | None = None
) -> tuple[int, int]:
    """Run every enabled campaign that is due at ``now``; return (runs, enrollments).

    Scheduled campaigns run once per due local day, at or after their time (a run missed
    while the scheduler was down is caught up the same local day, never later; a campaign
    enabled after today's time first runs on its next due day). Continuous triggers run at
    every tick, each in full or only for the patients a moment or a change concerns
    (``campaigns.engine.watermark``). A blast runs once, at the first tick at or after
    ``send_at``.

    ``practice_ids``: only these practices' campaigns (one tick group); None: every practice.
    """
    heads = campaign_heads(practice_ids)
    plan = watermark.plan([h for h in heads if _is_continuous(h)], now)
    due_days = {h.pk: day for h in heads if (day := _due_day(h, now)) is not None}
    # Today's runs of every due campaign in one query, not one per campaign and tick.
    ran = set(
        CampaignRun.objects.filter(
            campaign_id__any=due_days, local_date__any=set(due_days.values())
        )
        .values_list("campaign_id", "local_date")
        .order_by()
    )
    idle = _continuous_idle(heads, now, plan)
    to_run = [
        h.pk
        for h in heads
        if (h.kind == CampaignKind.BLAST and h.pk not in idle)
        or (_is_continuous(h) and h.pk not in idle and plan.runs(h.pk))
        or (h.pk in due_days and (h.pk, due_days[h.pk]) not in ran)
    ]
    runs = enrolled = 0
    if not to_run:
        plan.finish()
        return runs, enrolled
    campaigns = (
        Campaign.objects.filter(pk__any=to_run, enabled=True, sent_at__isnull=True)
        .select_related("practice")
        # A plain list (to_attr): campaign.steps.all() makes a related manager per call.
        .prefetch_related(Prefetch("steps", to_attr="step_list"))
        .order_by("id")
    )
    # Consecutive narrowed runs (in id order) are gathered, then enrolled together: one
    # transaction, one statement per shape (_narrowed_runs).
    pending: list[tuple[Campaign, list[int]]] = []
    for campaign in campaigns:
        if not campaign.step_list:
            continue
        continuous = campaign.kind != CampaignKind.BLAST and is_continuous(campaign.trigger)
        patients = plan.narrowed_to(campaign.pk) if continuous else None
        if patients is not None and campaign.kind == CampaignKind.DRIP:
            pending.append((campaign, patients))
            continue
        counts = _narrowed_runs(pending, now)
        runs, enrolled, pending = runs + len(counts), enrolled + sum(counts), []
        if campaign.kind != CampaignKind.BLAST and not continuous:
            day = due_days.get(campaign.pk)
            if day is None:
                continue  # changed since the first look: the next tick decides
            count = _scheduled_run(campaign, day, now)
        else:
            count = _campaign_run(campaign, now, patients=patients)
        if count is not None:
            runs += 1
            enrolled += count
    counts = _narrowed_runs(pending, now)
    runs, enrolled = runs + len(counts), enrolled + sum(counts)
    plan.finish()
    return runs, enrolled


def _narrowed_runs(pending: list[tuple[Campaign, list[int]]], now: dt.datetime) -> list[int]:
    """Enroll consecutive narrowed runs (continuous campaigns evaluated for a few patients,
    ``campaigns.engine.watermark``); return each run's count. They share one transaction
    (committed asynchronously, like every run; an error rolls it back and the tick is redone
    from the old watermark), and on PostgreSQL the runs of one shape are one statement
    (``_shape_enroll``): each run alone was a prepared statement of a millisecond, most of it
    the round trip and the executor's start. None of them reads another campaign's
    enrollments (``exclude_recent_days`` is never narrowed), so their order within does not
    matter."""
    if not pending:
        return []
    counts = []
    with transaction.atomic():
        commit_async()
        prepared.generic_plans()
        shapes: dict[tuple, list[tuple[Campaign, list[int]]]] = defaultdict(list)
        statements: dict[tuple, tuple[str, list]] = {}
        for campaign, patients in pending:
            rows = compiled.narrowed_rows_sql(campaign, now)
            if rows is None:
                counts.append(enroll(campaign, now=now, patients=patients))
                continue
            key = compiled.template_key(campaign, now)
            shapes[key].append((campaign, patients))
            statements[key] = rows
        for key, runs in shapes.items():
            counts.extend(_shape_enroll(runs, statements[key], now))
    return counts


def _shape_enroll(
    runs: list[tuple[Campaign, list[int]]], rows: tuple[str, list], now: dt.datetime
) -> list[int]:
    """Enroll narrowed runs of one shape in one ``INSERT … SELECT``: each campaign's practice,
    id, first step's due time and patients are a row of ``v``, and the shape's rows statement
    (``compiled.narrowed_rows_sql``) is a ``LATERAL`` subquery of it. Return each run's
    count, in the order of ``runs``."""
    rows_sql, params = rows
    table = Enrollment._meta.db_table
    ops = connection.ops
    sql = (
        f"INSERT INTO {table} (practice_id, campaign_id, patient_id, occurrence_key, "  # noqa: S608
        "appointment_id, entered_at, state, steps_done, next_step_at, exit_reason) "
        "SELECT v.practice_id, v.campaign_id, n.patient_id, n.occurrence_key, n.appointment_id, "
        "%s::timestamptz, %s, 0, v.first_due, '' "
        "FROM (SELECT u.practice_id, u.campaign_id, u.first_due, u.patients::bigint[] AS patients "
        "FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[], %s::text[]) "
        "AS u(practice_id, campaign_id, first_due, patients)) AS v "
        f"CROSS JOIN LATERAL ({rows_sql}) AS n WHERE true "
        "ON CONFLICT (campaign_id, patient_id, occurrence_key) DO NOTHING "
        "RETURNING campaign_id"
    )
    values = [
        ops.adapt_datetimefield_value(now),
        EnrollmentState.ACTIVE,
        [campaign.practice_id for campaign, _ in runs],
        [campaign.pk for campaign, _ in runs],
        [ops.adapt_datetimefield_value(_first_due(campaign, now)) for campaign, _ in runs],
        ["{" + ",".join(str(int(pk)) for pk in patients) + "}" for _, patients in runs],
        *params,
    ]
    with connection.cursor() as cursor:
        prepared.narrowed_execute(cursor, sql, values)
        made = Counter(campaign_id for (campaign_id,) in cursor.fetchall())
    for campaign, _ in runs:
        if made[campaign.pk]:
            # Experiments: each new enrollment's arm, fixed now, in this same transaction.
            arms_assign(campaign, now=now, steps=campaign.step_list)
    return [made[campaign.pk] for campaign, _ in runs]


def _is_continuous(head: _Head) -> bool:
    return head.continuous


def _due_day(campaign: _Head, now: dt.datetime) -> dt.date | None:
    """The local date of the scheduled campaign's run due at ``now``, if one is."""
    if campaign.kind == CampaignKind.BLAST or campaign.continuous:
        return None
    return due_day(campaign.schedule, enabled_at=campaign.enabled_at, tz=campaign.tz, now=now)


def _continuous_idle(campaigns: list[_Head], now: dt.datetime, plan: watermark.Plan) -> set[int]:
    """The continuous campaigns that cannot enroll anyone at ``now``: their practice has no
    appointment today that has started (missed appointments: at least the shortest delay
    ago; visits: checked in or completed). Without one the trigger matches nobody, whatever
    the filters; one query for all practices (early in the day, most of them). Only for the
    campaigns evaluated in full: the plan's query already asked this of the others."""
    continuous = [c for c in campaigns if _is_continuous(c) and c.pk in plan.full]
    if not continuous:
        return set()
    # By local day and zone: the local day's start bounds the appointments' start too, so
    # the read is a range of the (practice, start) index, from midnight to now (early in
    # the day, next to nothing), not every appointment of the day (50 ms of a cold idle
    # tick at 200 practices, 13 ms this way).
    todays: dict[tuple[dt.date, zoneinfo.ZoneInfo], set[int]] = defaultdict(set)
    for campaign in continuous:
        todays[now.astimezone(campaign.tz).date(), campaign.tz].add(campaign.practice_id)
    day_q = Q()
    for (day, tz), practice_ids in todays.items():
        # An hour early: a zone whose midnight is skipped or repeated (a change of clocks).
        since = dt.datetime.combine(day, dt.time(0, 0), tzinfo=tz) - dt.timedelta(hours=1)
        day_q |= Q(local_date=day, practice_id__in=practice_ids, start__gte=since)
    started = (
        Appointment.objects.filter(day_q, start__lte=now)
        .annotate(
            kind=Case(
                When(status__in=VISIT_STATUSES, then=Value("visit")),
                When(
                    ~Q(status__in=NOT_MISSED_STATUSES)
                    & Q(start__lte=now - dt.timedelta(minutes=min(MISSED_MINUTES))),
                    then=Value("missed"),
                ),
                default=Value(""),
            )
        )
        .values_list("practice_id", "kind")
        .order_by()
        .distinct()
    )
    present = set(started)
    idle = {
        c.pk for c in continuous if (c.practice_id, continuous_of(c.trigger).event) not in present
    }
    if connection.vendor == "postgresql":
        rest = [c for c in continuous if c.pk not in idle]
        idle |= {c.pk for c in rest} - _with_new_occurrences(rest, now)
    return idle


def _with_new_occurrences(campaigns: list[_Head], now: dt.datetime) -> set[int]:
    """Of these continuous campaigns, the ones that may enroll someone new at ``now``: a
    trigger candidate today (a missed appointment past the campaign's delay; a visit checked
    in at least its hours ago) whose own occurrence has not entered yet. Filters are left
    out, so this is a superset; the rest cannot enroll anyone, since every occurrence their
    trigger could produce has entered already. One statement for all of them (PostgreSQL:
    the campaigns travel as arrays).

    Without it a busy minute runs every continuous campaign's audience query again, though
    almost none has anyone new: most of a tick at thousands of practices.
    """
    if not campaigns:
        return set()
    rows = []
    for c in campaigns:
        how = continuous_of(c.trigger)
        since = now - how.delay_of(c.trigger)
        rows.append((c.pk, c.practice_id, how.event, now.astimezone(c.tz).date(), since))
    appointments = Appointment._meta.db_table
    enrollments = Enrollment._meta.db_table
    sql = f"""
        SELECT DISTINCT v.campaign_id
        FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::date[], %s::timestamptz[])
            AS v(campaign_id, practice_id, kind, today, since)
        JOIN {appointments} a ON a.practice_id = v.practice_id AND a.local_date = v.today
        WHERE (
            (v.kind = 'missed' AND a.start <= v.since AND NOT (a.status = ANY(%s)))
            OR (v.kind = 'visit' AND a.status = ANY(%s) AND a.start <= %s
                AND (a.checked_in_at <= v.since
                     OR (a.checked_in_at IS NULL AND a.start <= v.since)))
        )
        AND NOT EXISTS (
            SELECT 1 FROM {enrollments} e
            WHERE e.campaign_id = v.campaign_id AND e.patient_id = a.patient_id
                AND e.occurrence_key = 'appointment:' || a.id
        )
    """  # noqa: S608
    columns = [list(column) for column in zip(*rows, strict=True)]
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [*columns, list(NOT_MISSED_STATUSES), list(VISIT_STATUSES), now],
        )
        return {campaign_id for (campaign_id,) in cursor.fetchall()}


def _scheduled_run(campaign: Campaign, today: dt.date, now: dt.datetime) -> int | None:
    """Record today's run of a due scheduled campaign, then enroll; None when another tick
    ran it today. The run is inserted first: its unique (campaign, day) makes a concurrent
    tick wait there and give up, before either has inserted any enrollment."""
    try:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                return _run_enroll(campaign, today, now)
            commit_async()  # redone by the next tick if a crash lost it
            run = CampaignRun.objects.create(
                practice_id=campaign.practice_id, campaign=campaign, local_date=today, ran_at=now
            )
            count = enroll(campaign, now=now)
            if count:
                CampaignRun.objects.filter(pk=run.pk).update(enrolled=count)
            return count
    except IntegrityError:
        return None  # another tick ran it today


def _run_enroll(campaign: Campaign, today: dt.date, now: dt.datetime) -> int:
    """``_scheduled_run`` on PostgreSQL: the run record and the enrollments in one statement
    (a run was four round trips and two ORM compilations besides its INSERT … SELECT, a
    millisecond and a half of its 5). The run row is inserted first all the same: the
    enrollments' INSERT reads it (``EXISTS``), so a concurrent tick's run of the same day
    waits on its unique key and fails before inserting any enrollment. The transaction
    commits asynchronously (``durability``)."""
    insert, values = _enroll_statement(campaign, now, None, where="EXISTS (SELECT FROM run)")
    runs = CampaignRun._meta.db_table
    sql = (
        f"WITH run AS (INSERT INTO {runs} "  # noqa: S608 - the models' table names
        "(practice_id, campaign_id, local_date, ran_at, enrolled) "
        f"SELECT %s, %s, %s, %s, 0 FROM (SELECT {COMMIT_ASYNC_SQL}) AS durability "
        f"RETURNING id), added AS ({insert} RETURNING 1) "
        "SELECT (SELECT id FROM run), (SELECT count(*) FROM added)"
    )
    ops = connection.ops
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                campaign.practice_id,
                campaign.pk,
                ops.adapt_datefield_value(today),
                ops.adapt_datetimefield_value(now),
                may_commit_async(),
                *values,
            ],
        )
        run_id, count = cursor.fetchone()
        if count:
            cursor.execute(f"UPDATE {runs} SET enrolled = %s WHERE id = %s", [count, run_id])  # noqa: S608
    if count:
        arms_assign(campaign, now=now, steps=_steps_of(campaign))
    return count


def _campaign_run(
    campaign: Campaign, now: dt.datetime, *, patients: list[int] | None = None
) -> int | None:
    """Enroll a blast (once, at its time) or a continuous campaign (only ``patients``, when
    given); None when not due."""
    if campaign.kind == CampaignKind.BLAST:
        if campaign.send_at and campaign.send_at > now:
            return None
        with transaction.atomic():
            commit_async()
            # Claim the send: of concurrent ticks, exactly one sets sent_at.
            if not Campaign.objects.filter(pk=campaign.pk, sent_at__isnull=True).update(
                sent_at=now
            ):
                return None
            return enroll(campaign, now=now)
    with transaction.atomic():
        commit_async()
        return enroll(campaign, now=now, patients=patients)


def enroll(campaign: Campaign, *, now: dt.datetime, patients: list[int] | None = None) -> int:
    """Insert one enrollment per new occurrence in one ``INSERT … SELECT … ON CONFLICT DO
    NOTHING``: the unique (campaign, patient, occurrence key) makes re-runs harmless.

    The rows are ``campaigns.audience.query``' (``audience_candidates``, ``new_occurrences_sql``),
    which ``audience`` and ``explain`` read too. Campaigns of a tick run one after the other,
    each committed, so a drip with ``exclude_recent_days`` sees the enrollments of the drips
    that ran before it in the same tick. ``patients`` narrows the run to those patients (a
    continuous campaign evaluated by what changed: ``campaigns.engine.watermark``).
    """
    sql, values = _enroll_statement(campaign, now, patients)
    with connection.cursor() as cursor:
        if patients is not None and campaign.kind == CampaignKind.DRIP:
            # A few patients: planned once per connection and shape, not at every run.
            prepared.narrowed_execute(cursor, sql, values)
        else:
            cursor.execute(sql, values)
        count = cursor.rowcount
    if count:
        # Experiments: each new enrollment's arm, fixed now, in this same transaction.
        arms_assign(campaign, now=now, steps=_steps_of(campaign))
    return count


def _enroll_statement(
    campaign: Campaign, now: dt.datetime, patients: list[int] | None, *, where: str = "true"
) -> tuple[str, list]:
    """``enroll``'s INSERT … SELECT … ON CONFLICT DO NOTHING and its values; ``where``: a
    condition on inserting at all (``_run_enroll``'s)."""
    first_due = _first_due(campaign, now)
    if connection.vendor == "postgresql" and campaign.kind == CampaignKind.DRIP:
        # From the statement compiled once a day for every campaign of its shape.
        rows_sql, params = compiled.audience_rows_sql(campaign, now, patients)
    else:
        candidates = audience_candidates(campaign, at=now)
        if patients is not None:
            candidates = candidates.filter(pk__in=patients)
        rows_sql, params = new_occurrences_sql(campaign, candidates)
    table = Enrollment._meta.db_table
    ops = connection.ops
    # The table name is the model's and rows_sql is compiled with its values kept apart in
    # params: no input is formatted into the statement. The WHERE clause ("true" by default)
    # keeps PostgreSQL from reading ON CONFLICT as a join condition.
    sql = (
        f"INSERT INTO {table} (practice_id, campaign_id, patient_id, occurrence_key, "  # noqa: S608
        "appointment_id, entered_at, state, steps_done, next_step_at, exit_reason) "
        "SELECT %s, %s, n.patient_id, n.occurrence_key, n.appointment_id, %s, %s, 0, %s, '' "
        f"FROM ({rows_sql}) AS n WHERE {where} "
        "ON CONFLICT (campaign_id, patient_id, occurrence_key) DO NOTHING"
    )
    values = [
        campaign.practice_id,
        campaign.pk,
        ops.adapt_datetimefield_value(now),
        EnrollmentState.ACTIVE,
        ops.adapt_datetimefield_value(first_due),
        *params,
    ]
    return sql, values


def _steps_of(campaign: Campaign) -> list[MessageStep]:
    steps = getattr(campaign, "step_list", None)
    return list(campaign.steps.all()) if steps is None else steps


def _first_due(campaign: Campaign, now: dt.datetime) -> dt.datetime:
    """When an enrollment made at ``now`` gets its first step."""
    first = _steps_of(campaign)[0]
    return step_due(
        previous=now,
        value=first.delay_value,
        unit=first.delay_unit,
        schedule=campaign.schedule or DEFAULT_SCHEDULE,
        tz=campaign.practice.tz,
    )
