"""Benchmark: the drip engine's ticks on generated data, with two baselines in the same run.

On a fresh database loaded by ``benchmarks.generate`` (practices spread over four US time
zones, ten drip campaigns and a blast each):

- **Full tick** at 10:05 in Los Angeles on the benchmark day (13:05 in New York): every
  scheduled campaign (all run at 08:30-10:00 local) is due in every zone on the same local
  day (the eastern practices catch their run up later the same day, as the engine does
  after a pause), and the continuous campaigns see the day so far.
- **Continuous tick** 30 minutes later: the missed appointments and check-ins of that half
  hour across all practices. **Idle tick**: the same instant again once the outbox has been
  drained, and 07:00 in New York before anything happened.
- **Hand-written SQL lower bound**: the same audiences and inserts as one statement per
  campaign across all practices (``benchmarks/engine_handsql.py``), timed in a transaction
  that is rolled back (run twice, the second, warm, timing counts).
- **Naive per-patient loop** (django-drip style): for a sample of patients, load each
  patient's appointments, tags, cases, diagnoses and services (queries per patient),
  evaluate every campaign's trigger and filters in Python, and insert each enrollment and
  message row by row; timed in a rolled-back transaction and scaled to all patients.

- **Fan-out** (issue 20): the same full tick, run as beat runs it, one task per group of
  practices (``TICK_GROUPS``), on a copy of the freshly generated data taken before any tick:
  once by one process taking the groups in turn, once by two processes (each its own
  connection) sharing them; the ratio of their wall times, with the load average.
- **Growth** (issue 20): the full tick at a quarter and a half of the size, each generated and
  ticked in fresh processes (``benchmarks/engine_growth.py``), beside the size's own (the
  fan-out's one-group measure): the least-squares exponent of time against patients, and the
  tick process's peak RSS.

A tick is measured as its four phases called directly (``campaigns_run_due``,
``goals_apply``, ``steps_materialize``, ``messages_dispatch``): dispatch claims the due
messages; handing the claimed ids to Celery (``send_message_task.delay``, a broker round
trip each) is timed separately on the in-memory broker and reported beside it.

    uv run python -m benchmarks.engine [--size small|full]
"""

from __future__ import annotations

import datetime as dt
import os
import resource
import sys
import time
import zoneinfo
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (
    Result,
    Section,
    admin_connect,
    cli,
    database_url_for,
    recreate_database,
    settle,
    setup_django,
    timed,
)
from benchmarks.generate import BENCH_DAY, CAMPAIGNS, SIZES, generate

LA = zoneinfo.ZoneInfo("America/Los_Angeles")
NY = zoneinfo.ZoneInfo("America/New_York")
FULL_AT = dt.datetime.combine(BENCH_DAY, dt.time(10, 5), LA)
CONTINUOUS_AT = FULL_AT + dt.timedelta(minutes=30)
EARLY_AT = dt.datetime.combine(BENCH_DAY, dt.time(7, 0), NY)
NEXT_MORNING_AT = EARLY_AT + dt.timedelta(days=1)
NAIVE_SAMPLE = {"small": 400, "full": 400}
TARGETS = {
    "full": 30.0,
    # Issue 20: the every-minute cost follows what changed.
    "continuous": 0.5,
    "re_tick": 0.15,
    "idle": 0.1,
    "naive": 50.0,
    "lower_bound": 1.5,
    "fanout": 0.65,
    "growth_exponent": 1.0,
    "peak_rss_mb": 500,
}
# The growth table's smaller sizes, as numbers of practices of the size's patients each (the
# size itself is the third point).
GROWTH_PRACTICES = {"small": (5, 10), "full": (50, 100)}
# Runs of each growth point; the fastest counts. Two runs of one size differed by up to 11%
# (a shared machine), which moves the exponent by 0.07 either way; the fastest of three is
# the likelier to be the machine's undisturbed speed at every size.
GROWTH_RUNS = 3


def measured_tick(now: dt.datetime) -> dict:
    """One tick's phases, timed; the claimed message ids are returned, not enqueued."""
    from django.db import connection

    from campaigns.engine.enroll import campaigns_run_due
    from campaigns.engine.goals import goals_apply
    from campaigns.engine.steps import steps_materialize
    from messaging.outbox.dispatch import messages_dispatch

    statements = []

    def count(execute, sql, params, many, context):
        statements.append(1)
        return execute(sql, params, many, context)

    seconds = {}
    with connection.execute_wrapper(count):
        seconds["enroll"], (runs, enrolled) = timed(campaigns_run_due, now=now)
        seconds["goals"], goals = timed(goals_apply, now=now)
        seconds["materialize"], (created, skipped) = timed(steps_materialize, now=now)
        seconds["dispatch"], claimed = timed(messages_dispatch, now=now)
    return {
        "statements": len(statements),
        "seconds": seconds,
        "total": sum(seconds.values()),
        "runs": runs,
        "enrolled": enrolled,
        "goals": goals,
        "created": created,
        "skipped": skipped,
        "claimed": claimed,
    }


# The tables a tick writes (and the drain rewrites), which autovacuum would tidy.
TICK_TABLES = [
    "messaging_outboundmessage",
    "messaging_messageevent",
    "campaigns_enrollment",
    "campaigns_campaignrun",
    "campaigns_continuousevaluation",
    "campaigns_patientchange",
    "messaging_sendallowance",
    "reports_pendingmessage",
]


def outbox_drain() -> int:
    """What the send workers would have done: every queued or claimed message is sent. Then
    what autovacuum would do before the next tick (it is off on this machine's PostgreSQL, a
    CI setting; a production server wakes it every minute): VACUUM ANALYZE of the tables
    the tick wrote, whose dead rows (the drain rewrites every message) would otherwise be
    read by every later query of the outbox."""
    from django.db import connection

    from messaging.models import MessageStatus, OutboundMessage

    drained = OutboundMessage.objects.filter(
        status__in=[MessageStatus.QUEUED, MessageStatus.SENDING]
    ).update(status=MessageStatus.SENT, sent_at=CONTINUOUS_AT)
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {', '.join(TICK_TABLES)}")
    return drained


def enqueue_seconds_per_message(ids: list[int]) -> float:
    """Handing claimed ids to Celery as ``tick(send="queue")`` does (batches of
    ``SEND_TASK_BATCH_SIZE`` per task), on the in-memory broker, per message (a sample)."""
    from messaging.send_queue import messages_enqueue

    sample = ids[:4000]
    if not sample:
        return 0.0
    seconds, _ = timed(messages_enqueue, sample)
    return seconds / len(sample)


def hand_sql(now: dt.datetime) -> tuple[float, dict]:
    """The lower bound: run twice in rolled-back transactions, return the warm run."""
    from django.conf import settings
    from django.db import connection, transaction

    from benchmarks.engine_handsql import lower_bound

    scheduled = [c["name"] for c in CAMPAIGNS if c.get("schedule")]
    result: tuple[float, dict] = (0.0, {})
    for _ in range(2):
        with transaction.atomic(), connection.cursor() as cursor:
            result = timed(
                lower_bound,
                cursor.cursor,
                now=now,
                scheduled=scheduled,
                rate=settings.SEND_RATE_PER_PRACTICE_PER_MINUTE,
            )
            transaction.set_rollback(True)
    return result


# --- the naive per-patient loop -------------------------------------------------------------


def _naive_trigger(trigger: dict, filters: dict, data: dict, at: dt.datetime, tz) -> tuple:
    """(occurrence key, appointment id) when the trigger matches the patient, else None."""
    from campaigns.audience.triggers import reminder_occurrence_key

    patient = data["patient"]
    today = at.astimezone(tz).date()
    kind = trigger["type"]
    appointments = data["appointments"]
    purposes = filters.get("appointment_purposes")
    providers = filters.get("providers")

    def appointment_ok(a) -> bool:
        if purposes and (a.purpose is None or a.purpose.name not in purposes):
            return False
        if providers and providers["match"] == "appointment":
            return a.provider is not None and a.provider.name in providers["names"]
        return True

    if kind == "birthday":
        target = today - dt.timedelta(days=trigger.get("offset_days", 0))
        if patient.birth_date and (patient.birth_month, patient.birth_day) == (
            target.month,
            target.day,
        ):
            return f"birthday:{target.year}", None
        return None
    if kind == "first_visit":
        day = today - dt.timedelta(days=trigger.get("days_after", 0))
        return ("first_visit", None) if patient.first_visit_date == day else None
    if kind == "anniversary":
        target = today - dt.timedelta(days=trigger.get("offset_days", 0))
        first = patient.first_visit_date
        same_day = first and (first.month, first.day) == (target.month, target.day)
        years = trigger.get("years")
        counted = not years or (first and target.year - first.year in years)
        if same_day and counted and first < dt.date(target.year, 1, 1):
            return f"anniversary:{target.year}", None
        return None
    if kind in ("scheduled_appointment", "missed_appointment"):
        if kind == "scheduled_appointment":
            candidates = [
                a
                for a in appointments
                if a.status in ("scheduled", "confirmed")
                and a.start > at
                and a.local_date == today + dt.timedelta(days=trigger["days"])
            ]
        else:
            since = at - dt.timedelta(minutes=trigger["minutes_after"])
            candidates = [
                a
                for a in appointments
                if a.local_date == today
                and a.start <= since
                and a.status not in ("checked_in", "completed", "cancelled", "rescheduled")
            ]
        candidates = [a for a in candidates if appointment_ok(a)]
        if not candidates:
            return None
        first = min(candidates, key=lambda a: (a.start, a.id))
        if kind == "scheduled_appointment":  # the appointment at its start
            return reminder_occurrence_key(first.id, first.start), first.id
        return f"appointment:{first.id}", first.id
    # Visit triggers: each case's latest appointment (appointments without a case: one more).
    visit = kind == "last_visit_checked_in"
    statuses = (
        ("checked_in", "completed")
        if visit
        else ("scheduled", "confirmed", "checked_in", "completed", "no_show")
    )
    case_types = filters.get("case_types")
    latest: dict = {}
    for a in appointments:
        if a.status not in statuses or (visit and a.start > at):
            continue
        if case_types and (a.case is None or a.case.case_type is None):
            continue
        if case_types and a.case.case_type.name not in case_types:
            continue
        group = a.case_id or 0
        if group not in latest or (a.start, a.id) > (latest[group].start, latest[group].id):
            latest[group] = a
    candidates = []
    for a in latest.values():
        when = trigger["when"]
        if when == "today":
            since = at - dt.timedelta(hours=trigger.get("hours_after", 0))
            ok = a.local_date == today and (a.checked_in_at or a.start) <= since
        elif when == "yesterday":
            ok = a.local_date == today - dt.timedelta(days=1)
        else:
            day = today - dt.timedelta(days=trigger["days"])
            ok = a.local_date == day if trigger["match"] == "exact" else a.local_date <= day
        if ok and appointment_ok(a):
            candidates.append(a)
    if not candidates:
        return None
    newest = max(candidates, key=lambda a: (a.start, a.id))
    return f"appointment:{newest.id}", newest.id


def _naive_filters(filters: dict, data: dict, at: dt.datetime, tz, appointment_trigger) -> bool:
    from campaigns.audience.filters import years_before

    p = data["patient"]
    tags = data["tags"]
    cases = data["cases"]
    today = at.astimezone(tz).date()
    name = lambda lookup: lookup.name if lookup else None  # noqa: E731
    t = filters.get("tags")
    if t and t["include"] and not tags & set(t["include"]):
        return False
    if t and t["exclude"] and tags & set(t["exclude"]):
        return False
    if filters.get("status") == "active" and p.status != "active":
        return False
    if filters.get("status") == "inactive" and p.status == "active":
        return False
    if "has_future_appointment" in filters:
        future = any(
            a.start > at and a.status in ("scheduled", "confirmed") for a in data["appointments"]
        )
        if future != filters["has_future_appointment"]:
            return False
    providers = filters.get("providers")
    if not appointment_trigger:
        purposes = filters.get("appointment_purposes")
        wanted = providers["names"] if providers and providers["match"] == "appointment" else None
        if (purposes or wanted) and not any(
            (not purposes or name(a.purpose) in purposes)
            and (not wanted or name(a.provider) in wanted)
            for a in data["appointments"]
        ):
            return False
    primary = providers and providers["match"] == "primary"
    if primary and name(p.primary_provider) not in providers["names"]:
        return False
    case_types = filters.get("case_types")
    if case_types and not any(name(c.case_type) in case_types for c in cases):
        return False
    if filters.get("diagnoses") and not data["diagnoses"] & set(filters["diagnoses"]):
        return False
    for key, field in [("attorneys", "attorney"), ("insurance_companies", "insurance_company")]:
        if filters.get(key):
            names = filters[key]
            if name(getattr(p, field)) not in names and not any(
                name(getattr(c, field)) in names for c in cases
            ):
                return False
    for key, field in [
        ("care_packages", "care_package"),
        ("fee_schedules", "fee_schedule"),
        ("referral_sources", "referral_source"),
    ]:
        if filters.get(key) and name(getattr(p, field)) not in filters[key]:
            return False
    if filters.get("services") and not data["services"] & set(filters["services"]):
        return False
    paid = filters.get("paid_total")
    if paid and ("min" in paid and p.paid_total < paid["min"]):
        return False
    if paid and ("max" in paid and p.paid_total > paid["max"]):
        return False
    age = filters.get("age")
    if age:
        if p.birth_date is None:
            return False
        if "min" in age and p.birth_date > years_before(today, age["min"]):
            return False
        if "max" in age and p.birth_date <= years_before(today, age["max"] + 1):
            return False
    if filters.get("sex") and p.sex not in filters["sex"]:
        return False
    address = filters.get("address")
    if address:
        if address.get("states") and p.state.lower() not in [s.lower() for s in address["states"]]:
            return False
        if address.get("cities") and p.city.lower() not in [c.lower() for c in address["cities"]]:
            return False
        if address.get("postal_codes") and p.postal_code not in address["postal_codes"]:
            return False
    visits = filters.get("visit_count")
    if visits:
        if "eq" in visits and p.visit_count != visits["eq"]:
            return False
        if "min" in visits and p.visit_count < visits["min"]:
            return False
        if "max" in visits and p.visit_count > visits["max"]:
            return False
    return True


def naive_loop(patient_ids: list[int], *, now: dt.datetime) -> tuple[float, set]:
    """The django-drip-style baseline on these patients, in a rolled-back transaction:
    returns (seconds, the (campaign, patient, occurrence key) it enrolled)."""
    from django.db import transaction
    from django.db.models import Q

    from campaigns.audience.exclusions import PENDING_STATUSES
    from campaigns.content.render import render_message
    from campaigns.language.triggers import APPOINTMENT_TRIGGERS, is_continuous
    from campaigns.models import Campaign, CampaignKind, Enrollment
    from campaigns.schedule import is_due_on, run_time
    from messaging.models import SENT_STATUSES, MessageStatus, OutboundMessage
    from messaging.outbox.addresses import address_problem
    from patients.models import (
        Appointment,
        AppointmentService,
        Case,
        CaseDiagnosis,
        Patient,
        PatientStatus,
    )

    enrolled = set()
    started = time.perf_counter()
    with transaction.atomic():
        for patient_id in patient_ids:
            patient = Patient.objects.select_related(
                "practice",
                "primary_provider",
                "referral_source",
                "attorney",
                "care_package",
                "fee_schedule",
                "insurance_company",
            ).get(pk=patient_id)
            practice = patient.practice
            tz = practice.tz
            data = {
                "patient": patient,
                "appointments": list(
                    Appointment.objects.filter(patient=patient).select_related(
                        "purpose", "provider", "case__case_type"
                    )
                ),
                "tags": set(patient.tags.values_list("name", flat=True)),
                "cases": list(
                    Case.objects.filter(patient=patient).select_related(
                        "case_type", "attorney", "insurance_company"
                    )
                ),
                "diagnoses": set(
                    CaseDiagnosis.objects.filter(case__patient=patient).values_list(
                        "diagnosis__name", flat=True
                    )
                ),
                "services": set(
                    AppointmentService.objects.filter(appointment__patient=patient).values_list(
                        "service__name", flat=True
                    )
                ),
            }
            if patient.status == PatientStatus.DECEASED:
                continue  # never sent anything
            campaigns = (
                Campaign.objects.filter(practice=practice, enabled=True, kind=CampaignKind.DRIP)
                .prefetch_related("steps")
                .order_by("id")  # the engine's order
            )
            today = now.astimezone(tz).date()
            for campaign in campaigns:
                trigger = campaign.trigger
                if not is_continuous(trigger) and (
                    not is_due_on(campaign.schedule, today)
                    or run_time(campaign.schedule, today, tz) > now
                ):
                    continue
                matched = _naive_trigger(trigger, campaign.filters, data, now, tz)
                if not matched or not _naive_filters(
                    campaign.filters, data, now, tz, trigger["type"] in APPOINTMENT_TRIGGERS
                ):
                    continue
                since = now - dt.timedelta(days=campaign.exclude_recent_days)
                if (
                    campaign.exclude_recent_days
                    and OutboundMessage.objects.filter(
                        Q(status__in=SENT_STATUSES, sent_at__gte=since)
                        | Q(status__in=PENDING_STATUSES, scheduled_for__gte=since),
                        patient=patient,
                        campaign__kind=CampaignKind.DRIP,
                        enrollment__isnull=False,
                        is_test=False,
                    )
                    .exclude(campaign=campaign)
                    .exists()
                ):
                    continue
                key, appointment_id = matched
                if Enrollment.objects.filter(
                    campaign=campaign, patient=patient, occurrence_key=key
                ).exists():
                    continue
                enrollment = Enrollment.objects.create(
                    practice=practice,
                    campaign=campaign,
                    patient=patient,
                    occurrence_key=key,
                    appointment_id=appointment_id,
                    entered_at=now,
                    next_step_at=now,
                )
                enrolled.add((campaign.pk, patient.pk, key))
                step = campaign.steps.all()[0]
                appointment = (
                    Appointment.objects.select_related("provider").get(pk=appointment_id)
                    if appointment_id
                    else None
                )
                subject, body = render_message(
                    channel=step.channel,
                    subject=step.subject,
                    body=step.body,
                    patient=patient,
                    practice=practice,
                    appointment=appointment,
                )
                to, reason = address_problem(patient, step.channel)
                OutboundMessage.objects.create(
                    practice=practice,
                    enrollment=enrollment,
                    campaign=campaign,
                    step_position=1,
                    patient=patient,
                    channel=step.channel,
                    to=to,
                    subject=subject,
                    body=body,
                    status=MessageStatus.QUEUED if to else MessageStatus.SKIPPED,
                    status_reason=reason,
                    scheduled_for=now,
                )
                enrollment.steps_done = 1
                enrollment.save(update_fields=["steps_done"])
        seconds = time.perf_counter() - started
        transaction.set_rollback(True)
    return seconds, enrolled


# --- fan-out: the full tick's groups in one process vs two ----------------------------------


def _group_worker(url: str, groups: int, taken, ready, go, results) -> None:
    """A worker process: set Django up on ``url`` (its own connection), say it is ready, wait
    for the start, then run groups' ticks (the four phases for the group's practices, claims
    not enqueued, as ``measured_tick``) until none is left; report (start, end, groups,
    claimed) in the monotonic clock, which every process on the machine shares.

    The groups are taken in turn from a shared counter, ``taken``, as Celery workers take
    the next task (a ``multiprocessing.Queue``'s ``get_nowait`` may say "empty" while another
    process reads it, which would leave that worker idle)."""
    setup_django(url)
    from django.db import connection

    from campaigns.engine.enroll import campaigns_run_due
    from campaigns.engine.goals import goals_apply
    from campaigns.engine.groups import group_practice_ids
    from campaigns.engine.steps import steps_materialize
    from messaging.outbox.dispatch import messages_dispatch

    with connection.cursor() as cursor:
        cursor.execute("SET jit = off")
    ready.put(os.getpid())
    go.wait()
    started, cpu, done, claimed = time.monotonic(), time.process_time(), [], 0
    while True:
        with taken.get_lock():
            group = taken.value
            taken.value += 1
        if group >= groups:
            break
        practice_ids = group_practice_ids(group)
        campaigns_run_due(now=FULL_AT, practice_ids=practice_ids)
        goals_apply(now=FULL_AT, practice_ids=practice_ids)
        steps_materialize(now=FULL_AT, practice_ids=practice_ids)
        claimed += len(messages_dispatch(now=FULL_AT, practice_ids=practice_ids))
        done.append(group)
    # Peak resident memory of this process (Linux: KiB), Django and its imports included.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    results.put((started, time.monotonic(), done, claimed, time.process_time() - cpu, peak))
    connection.close()


def fanned_out_tick(url: str, *, processes: int, groups: int) -> dict:
    """The full tick at FULL_AT as ``groups`` group ticks shared by ``processes`` worker
    processes (spawned, each its own connection), on the database at ``url``; the wall time
    from the start signal to the last group's end."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    taken, ready, results, go = (
        context.Value("i", 0),
        context.Queue(),
        context.Queue(),
        context.Event(),
    )
    os.environ["TICK_GROUPS"] = str(groups)  # the children's settings
    pool = [
        context.Process(target=_group_worker, args=(url, groups, taken, ready, go, results))
        for _ in range(processes)
    ]
    for process in pool:
        process.start()
    for _ in pool:
        ready.get(timeout=300)
    load = os.getloadavg()[0]
    go.set()
    reports = [results.get(timeout=3600) for _ in pool]
    for process in pool:
        process.join(timeout=60)
    return {
        "seconds": max(report[1] for report in reports) - min(report[0] for report in reports),
        "claimed": sum(report[3] for report in reports),
        "groups": sorted(len(report[2]) for report in reports),
        # Python's own CPU time per process (PostgreSQL's backends work besides).
        "python_cpu": sorted(round(report[4], 2) for report in reports),
        "peak_rss": max(report[5] for report in reports),
        "load": load,
    }


def _copy_database(url: str, template: str) -> str:
    """A new database at ``url``'s server made from ``template`` (PostgreSQL's file copy:
    the same rows, statistics and indexes); returns its URL."""
    name = f"{template}_copy"
    with admin_connect(url) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    # The copy's gigabytes on disk before the tick on it is timed, not while.
    print(f"copied {template}, settled in {settle(url):.1f} s", flush=True)
    return url.rsplit("/", 1)[0] + f"/{name}"


def _drop_database(url: str) -> None:
    from dj_database_url import parse

    with admin_connect(url) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{parse(url)["NAME"]}" WITH (FORCE)')


def fanout_compare(url: str, *, groups: int) -> tuple[dict, dict, dict]:
    """The full tick as one group (every practice: what ``tick`` does), then as ``groups``
    groups in one process, then in two, each on its own copy of the database at ``url`` (left
    untouched: it is the copies' template)."""
    from dj_database_url import parse

    template = parse(url)["NAME"]
    measured = []
    for processes, count in ((1, 1), (1, groups), (2, groups)):
        copy = _copy_database(url, template)
        try:
            measured.append(fanned_out_tick(copy, processes=processes, groups=count))
        finally:
            _drop_database(copy)
        print(f"fan-out, {count} group(s), {processes} process(es):", measured[-1], flush=True)
    # The growth table's largest point, measured GROWTH_RUNS times like the smaller ones (the
    # fastest run counts: the machine is shared); the first is the first measure above.
    whole = growth_tick_runs(url, template, first=measured[0])
    return whole, measured[1], measured[2]


def growth_tick_runs(url: str, template: str, *, first: dict | None = None) -> dict:
    """The full tick as one group of every practice (what ``manage.py tick`` does), on
    ``GROWTH_RUNS`` fresh copies of ``template`` in turn (``first``: the first run, already
    measured); the fastest run, with every run's time under ``runs``."""
    runs = [first] if first is not None else []
    while len(runs) < GROWTH_RUNS:
        copy = _copy_database(url, template)
        try:
            runs.append(fanned_out_tick(copy, processes=1, groups=1))
        finally:
            _drop_database(copy)
    print("one group, runs:", [round(run["seconds"], 2) for run in runs], flush=True)
    return {**min(runs, key=lambda run: run["seconds"]), "runs": [r["seconds"] for r in runs]}


# --- the benchmark ---------------------------------------------------------------------------


def _fmt(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds < 1 else f"{seconds:,.2f} s"


def _tick_line(label: str, tick: dict) -> str:
    s = tick["seconds"]
    return (
        f"| {label} | {_fmt(tick['total'])} | {_fmt(s['enroll'])} | {_fmt(s['goals'])} | "
        f"{_fmt(s['materialize'])} | {_fmt(s['dispatch'])} | {tick['runs']:,} | "
        f"{tick['enrolled']:,} | {tick['created'] + tick['skipped']:,} "
        f"({tick['skipped']:,} skipped) | {len(tick['claimed']):,} |"
    )


def growth_points(size: str) -> list[dict]:
    """The full tick at the growth table's smaller sizes, each generated and ticked in its own
    processes (``benchmarks.engine_growth``)."""
    import json
    import subprocess
    import tempfile

    _practices, per_practice = SIZES[size]
    points = []
    with tempfile.TemporaryDirectory() as tmp:
        for practices in GROWTH_PRACTICES[size]:
            out = Path(tmp) / f"growth-{practices}.json"
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.engine_growth",
                    "--practices",
                    str(practices),
                    "--per-practice",
                    str(per_practice),
                    "--out",
                    str(out),
                ],
                cwd=Path(__file__).resolve().parents[1],
                check=True,
            )
            points.append(json.loads(out.read_text()))
    return points


def growth_exponent(points: list[tuple[int, float]]) -> float:
    """The least-squares slope of log(seconds) against log(patients): 1 is linear growth."""
    import math

    xs = [math.log(n) for n, _ in points]
    ys = [math.log(seconds) for _, seconds in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )


def bench(size: str) -> Section:
    url = database_url_for("engine")
    # First, the growth table's smaller sizes (their own databases, dropped after).
    growth = growth_points(size)
    recreate_database(url)
    # Enqueueing needs no broker server: kombu's in-memory transport, in this process.
    os.environ["CELERY_BROKER_URL"] = "memory://"
    setup_django(url)
    from django.db import connection

    from campaigns.models import Campaign, Enrollment
    from patients.models import Patient

    practices, per_practice = SIZES[size]
    generated = generate(practices=practices, patients_per_practice=per_practice)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
        # JIT compilation (on by default, for statements estimated above jit_above_cost)
        # costs about a second per statement here, more than the statements themselves; off
        # for this session, for the engine and the hand-written SQL alike.
        cursor.execute("SET jit = off")
    print(f"generated in {generated.seconds:.1f} s: {generated.counts}", flush=True)

    # Before any tick: the fan-out runs on copies of this database (it must have no other
    # connection while it is copied).
    from django.conf import settings

    groups = settings.TICK_GROUPS
    connection.close()
    whole, one, two = fanout_compare(url, groups=groups)
    with connection.cursor() as cursor:
        cursor.execute("SET jit = off")
    fanout_ratio = two["seconds"] / one["seconds"]
    print(f"settled in {settle(url):.1f} s", flush=True)

    early = measured_tick(EARLY_AT)
    print("early idle tick", _fmt(early["total"]), flush=True)

    lower_seconds, lower = hand_sql(FULL_AT)
    print("hand-written SQL", _fmt(lower_seconds), lower, flush=True)

    sample_ids = list(
        Patient.objects.filter(practice__slug="bench-1")
        .order_by("id")
        .values_list("id", flat=True)[: NAIVE_SAMPLE[size]]
    )
    naive_seconds, naive_enrolled = naive_loop(sample_ids, now=FULL_AT)
    naive_scaled = naive_seconds / len(sample_ids) * generated.patients
    print("naive loop", _fmt(naive_seconds), "scaled", _fmt(naive_scaled), flush=True)

    full = measured_tick(FULL_AT)
    print("full tick", _fmt(full["total"]), full["seconds"], flush=True)
    enqueue = enqueue_seconds_per_message(full["claimed"])

    engine_enrolled = set(
        Enrollment.objects.filter(patient_id__in=sample_ids, entered_at=FULL_AT).values_list(
            "campaign_id", "patient_id", "occurrence_key"
        )
    )
    by_name = Counter(
        Enrollment.objects.filter(entered_at=FULL_AT).values_list("campaign__name", flat=True)
    )
    outbox_drain()
    continuous = measured_tick(CONTINUOUS_AT)
    print("continuous tick", _fmt(continuous["total"]), continuous["seconds"], flush=True)
    outbox_drain()
    busy_idle = measured_tick(CONTINUOUS_AT)
    print("re-tick, nothing new", _fmt(busy_idle["total"]), busy_idle["seconds"], flush=True)
    outbox_drain()
    idle = measured_tick(NEXT_MORNING_AT)
    print("idle tick", _fmt(idle["total"]), idle["seconds"], flush=True)

    naive_ratio = naive_scaled / full["total"]
    lower_ratio = full["total"] / lower_seconds
    agree = naive_enrolled == engine_enrolled
    hand_agree = {n: (by_name.get(n, 0), c) for n, c in lower["enrolled"].items()}
    campaigns = Campaign.objects.count()

    points = [
        *growth,
        {
            "patients": generated.patients,
            "practices": generated.practices,
            "seconds": whole["seconds"],
            "peak_rss": whole["peak_rss"],
            "runs": whole["runs"],
        },
    ]
    exponent = growth_exponent([(p["patients"], p["seconds"]) for p in points])
    peak_mb = whole["peak_rss"] / 2**20
    growth_rows = [
        f"| {p['patients']:,} | {p['practices']:,} | {_fmt(p['seconds'])} | "
        f"{p['seconds'] / p['patients'] * 1e6:.1f} | {p['peak_rss'] / 2**20:,.0f} MB | "
        + ", ".join(_fmt(seconds) for seconds in p["runs"])
        + " |"
        for p in points
    ]

    section = Section(title=f"Drip engine: ticks at {generated.patients:,} patients")
    section.lines += [
        f"Data: {generated.practices:,} practices (New York, Chicago, Denver and Los Angeles in "
        f"turn), {generated.patients:,} patients, {generated.cases:,} cases, "
        f"{generated.appointments:,} appointments, {campaigns:,} campaigns (ten drips of every "
        "trigger type and most filters, and a blast that is not sent, per practice), made by "
        f"`benchmarks/generate.py` with COPY in {generated.seconds:.0f} s.",
        "",
        f"Instants (benchmark day {BENCH_DAY:%A %Y-%m-%d}): full tick at "
        f"{FULL_AT:%H:%M} in Los Angeles ({FULL_AT.astimezone(NY):%H:%M} in New York), when "
        "every scheduled campaign (08:30-10:00 local) is due in every zone on the same local "
        "day (the eastern practices' runs are caught up later that day, as after a pause of "
        "the scheduler); continuous tick 30 minutes later. The outbox is then drained (marked "
        "sent, as the workers would) and the tick repeated at the same instant: nothing is new "
        "and no continuous campaign has anyone whose moment crossed, so none is run "
        "(`docs/engine-watermark.md`). After each drain the tables a tick writes are vacuumed "
        "(`VACUUM ANALYZE`), as autovacuum would have done by the next tick on a production "
        "server: it is off on this machine's PostgreSQL (a CI setting), and the drain's dead "
        "rows would otherwise be read by every later query of the outbox. "
        "**Idle tick** (nothing due): 07:00 in New York the next morning (04:00 in Los "
        "Angeles), before any appointment or scheduled run of the day, with the day's "
        "enrollments waiting for their next steps; and 07:00 on the benchmark day, before the "
        "full tick.",
        "",
        "PostgreSQL's JIT compilation is off for the benchmark's session (`SET jit = off`, "
        "for the engine and the hand-written SQL alike): on by default, it compiles any "
        "statement estimated above `jit_above_cost`, which took about a second per "
        "statement of the hand-written SQL, more than running it.",
        "",
        "A tick is its four phases called directly; dispatch *claims* due messages (at most "
        "`SEND_RATE_PER_PRACTICE_PER_MINUTE` per practice). Handing the claimed ids to Celery "
        'as `tick(send="queue")` does (`send_messages_task.delay`, a batch of '
        "`SEND_TASK_BATCH_SIZE` ids per task) costs "
        f"{enqueue * 1e6:,.0f} µs per message on the in-memory broker "
        f"({enqueue * len(full['claimed']):,.1f} s for the full tick's "
        f"{len(full['claimed']):,}), not included below.",
        "",
        "| tick | total | enroll | goals | materialize | claim | campaigns run | enrolled | "
        "messages | claimed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        _tick_line("full (all scheduled due)", full),
        _tick_line("continuous (+30 min)", continuous),
        _tick_line("re-tick at the same instant, nothing new", busy_idle),
        _tick_line("idle: next day 07:00 New York", idle),
        _tick_line("idle: 07:00 New York, before the full tick", early),
        "",
        f"Where the full tick's time goes: {full['statements']:,} SQL statements; enrolling "
        f"costs {full['seconds']['enroll'] / max(full['runs'], 1) * 1000:.1f} ms per campaign "
        "run (the ORM compiling the campaign's audience query, PostgreSQL planning and running "
        "its INSERT … SELECT, the run recorded), materializing "
        f"{full['seconds']['materialize'] / max(full['created'] + full['skipped'], 1) * 1000:.2f}"
        " ms per message (rendering in Python, then per batch a COPY each of messages, "
        "links and tokens, an INSERT of events and an UPDATE of the enrollments). "
        f"The continuous tick ran {continuous['statements']:,} statements, the re-tick "
        f"{busy_idle['statements']:,}, the idle tick {idle['statements']:,}.",
        "",
        "Baselines, same data, same instant as the full tick:",
        "",
        f"- Hand-written SQL (one statement per campaign for all practices, then messages, "
        f"events, links, enrollments moved on and the claim): {_fmt(lower_seconds)}, "
        f"{sum(lower['enrolled'].values()):,} enrollments, {lower['messages']:,} messages, "
        f"{lower['claimed']:,} claimed. Ours: {_fmt(full['total'])} = "
        f"{lower_ratio:.1f}x the lower bound.",
        "- Enrollments per campaign, engine vs hand-written SQL: "
        + ", ".join(f"{n} {a:,}/{b:,}" for n, (a, b) in hand_agree.items())
        + ".",
        f"- Naive per-patient loop on {len(sample_ids):,} patients: {_fmt(naive_seconds)} "
        f"({naive_seconds / len(sample_ids) * 1000:.1f} ms per patient), scaled to "
        f"{generated.patients:,} patients: {_fmt(naive_scaled)} = {naive_ratio:,.0f}x our "
        f"full tick. Its enrollments for the sample "
        f"{'match the engine exactly' if agree else 'differ from the engine'} "
        f"({len(naive_enrolled):,} vs {len(engine_enrolled):,}).",
        "",
        f"Fan-out (issue 20): the full tick as beat runs it, {groups} group tasks "
        "(`TICK_GROUPS`), each on a fresh copy of the generated data (`CREATE DATABASE … "
        "TEMPLATE`): one process taking the groups in turn "
        f"{_fmt(one['seconds'])} ({one['claimed']:,} claimed; as one group of every practice, "
        f"what `manage.py tick` does: {_fmt(whole['seconds'])}), two processes sharing them "
        f"{_fmt(two['seconds'])} ({two['claimed']:,} claimed; groups per process "
        f"{two['groups']}, Python CPU seconds per process {one['python_cpu']} vs "
        f"{two['python_cpu']}) = {fanout_ratio:.2f}x. Load average (1 min) at each start: "
        f"{whole['load']:.2f}, {one['load']:.2f} and {two['load']:.2f}, on "
        f"{os.cpu_count()} CPUs shared with "
        "PostgreSQL: two workers can only be as fast as the cores left to them.",
        "",
        "Growth (issue 20): the full tick at three sizes, each on freshly generated data of "
        f"the same shape (the same generator and seed, {per_practice:,} patients per practice; "
        "only the "
        "number of practices differs) in a fresh process that runs the whole tick as one "
        "group, as `manage.py tick` does (the smaller sizes by "
        "`benchmarks/engine_growth.py`, the largest the fan-out's first measure above and one "
        f"more). Each size's tick runs {GROWTH_RUNS} times, each time on a fresh copy of its data "
        "(`CREATE DATABASE … TEMPLATE`), and the fastest run counts: the machine is shared, and "
        "its speed drifted by a fifth within an hour. "
        "Peak RSS is that process's (`ru_maxrss`: Python, Django and the tick).",
        "",
        "| patients | practices | full tick | µs per patient | peak RSS | every run |",
        "|---:|---:|---:|---:|---:|---:|",
        *growth_rows,
        "",
        f"Growth exponent (least-squares slope of log time against log patients): "
        f"{exponent:.2f} (1 is linear).",
    ]
    section.results += [
        Result(
            "Full tick, 2 worker processes vs 1 (fan-out)",
            f"{fanout_ratio:.2f}x",
            f"≤ {TARGETS['fanout']:.2f}x",
            fanout_ratio <= TARGETS["fanout"],
        ),
        Result(
            "Engine full tick (enroll + goals + materialize + claim)",
            _fmt(full["total"]),
            f"≤ {TARGETS['full']:.0f} s",
            full["total"] <= TARGETS["full"],
        ),
        Result(
            "Engine continuous tick",
            _fmt(continuous["total"]),
            f"≤ {TARGETS['continuous']:.1f} s",
            continuous["total"] <= TARGETS["continuous"],
        ),
        Result(
            "Engine re-tick at a busy minute, nothing new",
            _fmt(busy_idle["total"]),
            f"≤ {TARGETS['re_tick'] * 1000:.0f} ms",
            busy_idle["total"] <= TARGETS["re_tick"],
        ),
        Result(
            "Engine idle tick (nothing due)",
            _fmt(idle["total"]),
            f"≤ {TARGETS['idle'] * 1000:.0f} ms",
            idle["total"] <= TARGETS["idle"],
        ),
        Result(
            "Naive per-patient loop vs engine",
            f"{naive_ratio:,.0f}x slower",
            f"≥ {TARGETS['naive']:.0f}x",
            naive_ratio >= TARGETS["naive"],
        ),
        Result(
            "Engine vs hand-written SQL",
            f"{lower_ratio:.1f}x",
            f"≤ {TARGETS['lower_bound']:.1f}x",
            lower_ratio <= TARGETS["lower_bound"],
        ),
        Result(
            f"Engine full tick growth, {points[0]['patients']:,} → {points[-1]['patients']:,} "
            "patients (exponent)",
            f"{exponent:.2f}",
            f"≤ {TARGETS['growth_exponent']:.1f} (linear)",
            exponent <= TARGETS["growth_exponent"],
        ),
        Result(
            f"Engine full tick peak RSS at {generated.patients:,} patients",
            f"{peak_mb:,.0f} MB",
            f"< {TARGETS['peak_rss_mb']} MB",
            peak_mb < TARGETS["peak_rss_mb"],
        ),
    ]
    return section


if __name__ == "__main__":
    cli(bench)
