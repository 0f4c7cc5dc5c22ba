"""Triggers (DESIGN §5.1) compiled to SQL.

``trigger_audience`` turns a campaign's trigger into one queryset of patients, each annotated
with its ``occurrence_key`` (what may enter the campaign once, ever) and, for triggers about an
appointment, the ``trigger_appointment_id``. Dates are local dates in the practice's time zone
(``RunContext``); no Python loop over patients.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

from django.db.models import (
    CharField,
    Exists,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Cast, Coalesce, Concat

from patients.models import (
    CANCELLED_STATUSES,
    UPCOMING_STATUSES,
    VISIT_STATUSES,
    Appointment,
    AppointmentStatus,
    Patient,
)
from trackstat.models import Practice

# Neither happened nor called off: still "missed" once its time has passed.
NOT_MISSED_STATUSES = (*VISIT_STATUSES, *CANCELLED_STATUSES)


@dataclass(frozen=True)
class RunContext:
    """One evaluation: the practice, the instant, and the local date it falls on."""

    practice: Practice
    at: dt.datetime

    @property
    def today(self) -> dt.date:
        return self.at.astimezone(self.practice.tz).date()

    def before(self, delta: dt.timedelta) -> dt.datetime:
        """The instant ``delta`` of elapsed time before ``at``.

        In UTC: an aware datetime in a zoneinfo zone adds and subtracts wall-clock time, an hour
        off across a DST change.
        """
        return self.at.astimezone(dt.UTC) - delta

    def day_start(self, day: dt.date) -> dt.datetime:
        """The instant a local day begins (DST-safe: zoneinfo resolves the wall time)."""
        return dt.datetime.combine(day, dt.time(0, 0), tzinfo=self.practice.tz)


def month_day_q(prefix: str, target: dt.date) -> Q:
    """Month/day equal to ``target``'s; 29 February counts on 28 February in common years."""
    condition = Q(**{f"{prefix}_month": target.month, f"{prefix}_day": target.day})
    if target.month == 2 and target.day == 28 and not calendar.isleap(target.year):
        condition |= Q(**{f"{prefix}_month": 2, f"{prefix}_day": 29})
    return condition


# Triggers not about an appointment still annotate the column (typed, so that it can be
# selected).
# A typed NULL: PostgreSQL needs to know a bare NULL parameter is an integer.
NO_APPOINTMENT = Cast(Value(None), output_field=IntegerField())


def _key(prefix: str) -> Value:
    return Value(prefix, output_field=CharField())


# An instant as "YYYY-MM-DDTHH:MM:SSZ" (UTC), in each database's SQL: a reminder's occurrence
# key carries its appointment's start. "{}" is the instant's SQL.
UTC_STAMP_SQL = {
    "postgresql": """to_char(({}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')""",
    "sqlite": "(replace(datetime({}), ' ', 'T') || 'Z')",
}


class UtcStamp(Func):
    """``UTC_STAMP_SQL`` as an expression."""

    output_field = CharField()

    def as_sql(self, compiler, connection, **extra):
        template = UTC_STAMP_SQL[connection.vendor].format("%(expressions)s")
        return super().as_sql(compiler, connection, template=template, **extra)


def reminder_occurrence_key(appointment_id: int, start: dt.datetime) -> str:
    """A reminder's occurrence: the appointment *and* its start (DESIGN §5.1), so an
    appointment moved after its reminder went out is reminded again for its new time."""
    return f"appointment:{appointment_id}@{start.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%SZ}"


def _appointment_keyed(
    patients: QuerySet, candidates: QuerySet, *, newest: bool = False, by_start: bool = False
) -> QuerySet:
    """Patients with a candidate appointment; the earliest (or ``newest``) one is the
    occurrence (with ``by_start``, the appointment at its start: ``reminder_occurrence_key``).

    A patient enters at most once per run however many appointments match. Visit triggers key
    on the newest matching visit, so a patient with two lapsed cases stays one occurrence from
    run to run instead of entering once per case.
    """
    order = ("-start", "-id") if newest else ("start", "id")
    mine = candidates.filter(patient_id=OuterRef("pk")).order_by(*order)
    key = [_key("appointment:"), Cast("trigger_appointment_id", CharField())]
    if by_start:
        stamp = mine.annotate(stamp=UtcStamp("start")).values("stamp")[:1]
        key += [_key("@"), Subquery(stamp, output_field=CharField())]
    return (
        patients.filter(Exists(candidates.filter(patient_id=OuterRef("pk"))))
        .annotate(
            trigger_appointment_id=Subquery(mine.values("id")[:1], output_field=IntegerField())
        )
        .annotate(occurrence_key=Concat(*key, output_field=CharField()))
    )


def latest_per_case(
    ctx: RunContext, statuses, *, case_types: list[str] | None, until: dt.datetime | None
) -> QuerySet:
    """Each case's latest appointment with one of ``statuses`` (the per-case rule).

    Appointments without a case form one more group per patient. With ``case_types``, only
    cases of those types count.
    """

    def group(queryset: QuerySet) -> QuerySet:
        queryset = queryset.filter(status__in=statuses)
        if until is not None:
            queryset = queryset.filter(start__lte=until)
        return queryset.annotate(group=Coalesce("case_id", Value(0)))

    later = group(Appointment.objects.filter(patient_id=OuterRef("patient_id"))).filter(
        Q(start__gt=OuterRef("start")) | Q(start=OuterRef("start"), id__gt=OuterRef("id")),
        group=OuterRef("group"),
    )
    latest = group(Appointment.objects.filter(practice=ctx.practice)).filter(~Exists(later))
    if case_types:
        latest = latest.filter(case__case_type__name__in=case_types)
    return latest


def _days_ago_q(trigger: dict, ctx: RunContext) -> Q:
    day = ctx.today - dt.timedelta(days=trigger["days"])
    if trigger["match"] == "exact":
        return Q(local_date=day)
    return Q(local_date__lte=day)


def trigger_audience(
    trigger: dict,
    ctx: RunContext,
    *,
    case_types: list[str] | None = None,
    appointment_q: Q | None = None,
) -> QuerySet[Patient]:
    """Patients the trigger matches at ``ctx.at``, annotated with ``occurrence_key``.

    ``appointment_q`` narrows the triggering appointment (the campaign's purpose and provider
    filters); ``case_types`` restricts visit triggers to those cases.
    """
    patients = Patient.objects.filter(practice=ctx.practice)
    today = ctx.today
    kind = trigger["type"]
    appointment_q = appointment_q or Q()

    if kind == "birthday":
        target = today - dt.timedelta(days=trigger.get("offset_days", 0))
        return patients.filter(month_day_q("birth", target)).annotate(
            occurrence_key=_key(f"birthday:{target.year}"), trigger_appointment_id=NO_APPOINTMENT
        )
    if kind == "first_visit":
        day = today - dt.timedelta(days=trigger.get("days_after", 0))
        return patients.filter(first_visit_date=day).annotate(
            occurrence_key=_key("first_visit"), trigger_appointment_id=NO_APPOINTMENT
        )
    if kind == "anniversary":
        target = today - dt.timedelta(days=trigger.get("offset_days", 0))
        matched = patients.filter(
            month_day_q("first_visit", target), first_visit_date__lt=dt.date(target.year, 1, 1)
        )
        if trigger.get("years"):
            matched = matched.filter(
                first_visit_date__year__in=[target.year - years for years in trigger["years"]]
            )
        return matched.annotate(
            occurrence_key=_key(f"anniversary:{target.year}"), trigger_appointment_id=NO_APPOINTMENT
        )

    appointments = Appointment.objects.filter(practice=ctx.practice).filter(appointment_q)
    if kind == "scheduled_appointment":
        upcoming = appointments.filter(status__in=UPCOMING_STATUSES, start__gt=ctx.at)
        if trigger["when"] == "booked":
            candidates = upcoming.filter(
                booked_at__gte=ctx.day_start(today),
                booked_at__lt=ctx.day_start(today + dt.timedelta(days=1)),
            )
        else:
            candidates = upcoming.filter(local_date=today + dt.timedelta(days=trigger["days"]))
        return _appointment_keyed(patients, candidates, by_start=True)
    if kind == "missed_appointment":
        candidates = appointments.filter(
            local_date=today,
            start__lte=ctx.before(dt.timedelta(minutes=trigger["minutes_after"])),
        ).exclude(status__in=NOT_MISSED_STATUSES)
        return _appointment_keyed(patients, candidates)
    if kind == "last_visit_checked_in":
        latest = latest_per_case(ctx, VISIT_STATUSES, case_types=case_types, until=ctx.at)
        when = trigger["when"]
        if when == "today":
            since = ctx.before(dt.timedelta(hours=trigger.get("hours_after", 0)))
            candidates = latest.filter(local_date=today).filter(
                Q(checked_in_at__lte=since) | Q(checked_in_at__isnull=True, start__lte=since)
            )
        elif when == "yesterday":
            candidates = latest.filter(local_date=today - dt.timedelta(days=1))
        else:
            candidates = latest.filter(_days_ago_q(trigger, ctx))
        return _appointment_keyed(patients, candidates.filter(appointment_q), newest=True)
    if kind == "last_visit_scheduled":
        statuses = [s for s in AppointmentStatus.values if s not in CANCELLED_STATUSES]
        latest = latest_per_case(ctx, statuses, case_types=case_types, until=None)
        candidates = latest.filter(_days_ago_q(trigger, ctx), appointment_q)
        return _appointment_keyed(patients, candidates, newest=True)
    raise ValueError(f"Unknown trigger type {kind!r}")
