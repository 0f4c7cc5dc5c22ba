"""Experiment attribution (DESIGN §5.9): per experiment enrollment, what the patient did within
``attribution_days`` after entering (booked, visited, revenue), rolled up per campaign,
experiment period, arm and entry day (``ArmDayStat``), so the arms report reads a few rows.

Kept current the roll-ups' way (``reports.rollup``): an enrollment's outcome row remembers what
was counted (``EnrollmentOutcome``); whenever the patient's EMR data changes the outcome is
recomputed from the data, set-wise, and only the difference goes into the counters, so each
change counts once however often the refresh runs.

- **booked**: an appointment booked (``booked_at``) in [entered, entered + window).
- **visited**: a checked-in or completed appointment, checked in (else started) in that span.
- **revenue**: ``paid_total`` now minus ``paid_total`` at entry, taken only while the window
  is open: once the patient's record changes after the window's end, the revenue stays what
  it was (a payment after the window is not the campaign's).

The enrollments themselves are counted by the report roll-up's batch (their arm is set in the
enrolling transaction, which marks them ``report_pending``), and their messages' sent,
delivered and clicked facts are counted with the message's own facts, once each.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import Counter, defaultdict
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import (
    Case,
    DecimalField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    QuerySet,
    Subquery,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from campaigns.models import Enrollment
from patients.models import VISIT_STATUSES, Appointment, Patient
from reports import bulk
from reports.models import ArmDayStat, EnrollmentOutcome, RollupState
from trackstat.models import Practice

NAME = "attribution"
# The changed-patients scan reaches this far behind its last run: a sync that committed after
# it with an earlier updated_at is still seen (recounting changes nothing).
OVERLAP = dt.timedelta(minutes=5)
ARM_COUNTERS = ["enrolled", "sent", "delivered", "clicked", "booked", "visited", "revenue"]
_KEY = tuple[int, int, int, str, dt.date]  # practice, campaign, period, arm, day


def experiment_enrollments_count(enrollments: list[dict], zones: dict) -> None:
    """Count the experiment enrollments of a roll-up batch into their arm (once each: their
    outcome row is made here) and compute their outcomes so far. ``enrollments`` are the
    batch's pending rows (``id``, ``experiment_period``)."""
    ids = [e["id"] for e in enrollments if e.get("experiment_period") is not None]
    if not ids:
        return
    counted = set(
        EnrollmentOutcome.objects.filter(enrollment_id__in=ids).values_list(
            "enrollment_id", flat=True
        )
    )
    new = list(
        Enrollment.objects.filter(pk__in=set(ids) - counted).values_list(
            "pk",
            "practice_id",
            "campaign_id",
            "patient_id",
            "experiment_period",
            "arm",
            "entered_at",
            "campaign__attribution_days",
            "paid_total_at_entry",
        )
    )
    if not new:
        return
    counters: dict[_KEY, Counter] = defaultdict(Counter)
    outcomes = []
    for pk, practice_id, campaign_id, patient_id, period, arm, entered, days, paid in new:
        tz = zones.get(practice_id)
        if tz is None:
            name = Practice.objects.values_list("time_zone", flat=True).get(pk=practice_id)
            tz = zones[practice_id] = zoneinfo.ZoneInfo(name)
        day = entered.astimezone(tz).date()
        outcomes.append(
            EnrollmentOutcome(
                enrollment_id=pk,
                practice_id=practice_id,
                campaign_id=campaign_id,
                patient_id=patient_id,
                period=period,
                arm=arm,
                day=day,
                entered_at=entered,
                window_end=entered + dt.timedelta(days=days),
                paid_total_at_entry=paid or 0,
            )
        )
        counters[(practice_id, campaign_id, period, arm, day)]["enrolled"] += 1
    EnrollmentOutcome.objects.bulk_create(outcomes, batch_size=2000)
    _counters_add(counters)
    _recompute(EnrollmentOutcome.objects.filter(enrollment_id__in=[o.pk for o in outcomes]))


def arm_messages_count(facts: list[tuple[int, bool, bool, bool]]) -> None:
    """Add messages' new sent / delivered / clicked facts to their enrollment's arm:
    ``facts`` holds (enrollment id, sent, delivered, clicked) of the roll-up batch."""
    if not facts:
        return
    arms = {
        pk: key
        for pk, *key in EnrollmentOutcome.objects.filter(
            enrollment_id__in={f[0] for f in facts}
        ).values_list("enrollment_id", "practice_id", "campaign_id", "period", "arm", "day")
    }
    missing = {f[0] for f in facts} - arms.keys()
    pending = (
        list(
            Enrollment.objects.filter(pk__in=missing, experiment_period__isnull=False).values(
                "id", "experiment_period"
            )
        )
        if missing
        else []
    )
    if pending:
        # Experiment enrollments not counted yet (their own roll-up batch comes later):
        # their outcome rows first, so their messages have an arm to count in.
        experiment_enrollments_count(pending, {})
        arms |= {
            pk: key
            for pk, *key in EnrollmentOutcome.objects.filter(enrollment_id__in=missing).values_list(
                "enrollment_id", "practice_id", "campaign_id", "period", "arm", "day"
            )
        }
    counters: dict[_KEY, Counter] = defaultdict(Counter)
    for enrollment_id, sent, delivered, clicked in facts:
        key = arms.get(enrollment_id)
        if key is None:
            continue  # not an experiment's enrollment
        counters[tuple(key)]["sent"] += sent
        counters[tuple(key)]["delivered"] += delivered
        counters[tuple(key)]["clicked"] += clicked
    _counters_add(counters)


def outcomes_refresh(*, now: dt.datetime | None = None) -> int:
    """Recompute the outcomes of the patients whose EMR data changed since the last run (and a
    little before, ``OVERLAP``) and count the differences; return how many changed. One run
    at a time (a locked ``RollupState`` row); another returns 0 at once."""
    now = now or timezone.now()
    with transaction.atomic():
        state = _lock_state()
        if state is None:
            return 0
        changed = 0
        if state.refreshed_at is not None:
            since = state.refreshed_at - OVERLAP
            patients = Patient.objects.filter(updated_at__gte=since).values("pk")
            appointments = Appointment.objects.filter(updated_at__gte=since).values("patient_id")
            # Two lookups, not one with OR: each can probe the outcomes' patient index. A
            # patient in both is recomputed twice; the second finds nothing new.
            changed = _recompute(
                EnrollmentOutcome.objects.filter(patient_id__in=Subquery(patients))
            ) + _recompute(EnrollmentOutcome.objects.filter(patient_id__in=Subquery(appointments)))
        state.refreshed_at = now
        state.save(update_fields=["refreshed_at"])
        return changed


def _lock_state() -> RollupState | None:
    state = RollupState.objects.select_for_update(skip_locked=True).filter(name=NAME).first()
    if state is not None:
        return state
    if RollupState.objects.filter(name=NAME).exists():
        return None
    try:
        with transaction.atomic():
            RollupState.objects.create(name=NAME)
    except IntegrityError:
        return None
    return RollupState.objects.select_for_update(skip_locked=True).filter(name=NAME).first()


def _recompute(outcomes: QuerySet[EnrollmentOutcome]) -> int:
    """Outcomes from the data now (one query), the differences into the counters (one
    statement) and into the outcome rows (one statement); return how many changed."""
    appointments = Appointment.objects.filter(patient_id=OuterRef("patient_id"))
    in_window = {"gte": OuterRef("entered_at"), "lt": OuterRef("window_end")}
    patient = Patient.objects.filter(pk=OuterRef("patient_id"))
    money = DecimalField(max_digits=12, decimal_places=2)
    rows = outcomes.annotate(
        booked_now=Exists(
            appointments.filter(booked_at__gte=in_window["gte"], booked_at__lt=in_window["lt"])
        ),
        visited_now=Exists(
            appointments.filter(status__in=VISIT_STATUSES)
            .annotate(at=Coalesce("checked_in_at", "start"))
            .filter(at__gte=in_window["gte"], at__lt=in_window["lt"])
        ),
        patient_changed_at=Subquery(patient.values("updated_at")[:1]),
        paid_now=Subquery(patient.values("paid_total")[:1], output_field=money),
        revenue_now=Case(
            When(
                patient_changed_at__lte=F("window_end"),
                then=ExpressionWrapper(F("paid_now") - F("paid_total_at_entry"), money),
            ),
            default=F("revenue"),
            output_field=money,
        ),
    ).values_list(
        "pk",
        "practice_id",
        "campaign_id",
        "period",
        "arm",
        "day",
        "booked",
        "visited",
        "revenue",
        "booked_now",
        "visited_now",
        "revenue_now",
    )
    counters: dict[_KEY, Counter] = defaultdict(Counter)
    updates = []
    for pk, practice_id, campaign_id, period, arm, day, *was, booked, visited, revenue in rows:
        revenue = Decimal(str(revenue)).quantize(Decimal("0.01"))
        if (booked, visited, revenue) == (was[0], was[1], Decimal(str(was[2]))):
            continue
        key = (practice_id, campaign_id, period, arm, day)
        counters[key]["booked"] += int(booked) - int(was[0])
        counters[key]["visited"] += int(visited) - int(was[1])
        counters[key]["revenue"] += revenue - Decimal(str(was[2]))
        updates.append((pk, booked, visited, revenue))
    bulk.rows_update(
        EnrollmentOutcome._meta.db_table,
        ["enrollment_id", "booked", "visited", "revenue"],
        ["bigint", "boolean", "boolean", "numeric"],
        updates,
    )
    _counters_add(counters)
    return len(updates)


def _counters_add(counters: dict[_KEY, Counter]) -> None:
    """Add to the arm counters in one ``INSERT … ON CONFLICT DO UPDATE``."""
    if not counters:
        return
    table = ArmDayStat._meta.db_table
    updates = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in ARM_COUNTERS)
    bulk.rows_insert(
        table,
        ["practice_id", "campaign_id", "period", "arm", "day", *ARM_COUNTERS],
        ["bigint", "bigint", "integer", "text", "date", *(["integer"] * 6), "numeric"],
        [
            (*key, *(counters[key][name] for name in ARM_COUNTERS[:-1]), counters[key]["revenue"])
            for key in sorted(counters)
        ],
        on_conflict=f"ON CONFLICT (campaign_id, period, arm, day) DO UPDATE SET {updates}",
    )
