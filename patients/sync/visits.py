"""The derived visit facts of patients and cases, recomputed from their appointments."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import models, transaction
from django.db.models import Count, Max, Min, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce, ExtractDay, ExtractMonth, TruncDate

from patients.models import (
    CANCELLED_STATUSES,
    VISIT_STATUSES,
    Appointment,
    Case,
    Patient,
)
from trackstat.models import Practice


def _facts_of(owner_field: str) -> dict:
    """Subqueries computing the visit facts of one patient or case from its appointments."""

    def aggregate(function, statuses=None, excluded=None):
        appointments = Appointment.objects.filter(**{owner_field: OuterRef("pk")})
        if statuses:
            appointments = appointments.filter(status__in=statuses)
        if excluded:
            appointments = appointments.exclude(status__in=excluded)
        return Subquery(
            appointments.order_by().values(owner_field).annotate(value=function).values("value")[:1]
        )

    return {
        "visit_count": Coalesce(aggregate(Count("pk"), statuses=VISIT_STATUSES), Value(0)),
        "last_visit_checked_in": aggregate(Max("local_date"), statuses=VISIT_STATUSES),
        "last_visit_scheduled": aggregate(Max("local_date"), excluded=CANCELLED_STATUSES),
        "first_visit_date": aggregate(Min("local_date"), statuses=VISIT_STATUSES),
    }


def patients_lock(*, practice: Practice, patient_ids: Iterable[int]) -> set[int]:
    """Lock these patients' rows until the transaction ends, in id order, and return the ids
    locked.

    Every write that changes a patient's appointments or cases takes this lock first, so per
    patient they run one after another: a statement after it sees what the others committed
    (PostgreSQL's READ COMMITTED gives each statement a fresh snapshot). One order for every
    caller means two bulk requests with overlapping patients wait for each other instead of
    deadlocking. A lock the transaction already holds is taken again at no cost.
    """
    ids = sorted({pk for pk in patient_ids if pk})
    if not ids:
        return set()
    return set(
        Patient.objects.select_for_update()
        .filter(practice=practice, pk__in=ids)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def visit_facts_refresh(
    *,
    practice: Practice,
    patient_ids: Iterable[int] = (),
    case_ids: Iterable[int] = (),
) -> None:
    """Recompute the derived visit facts of these patients and cases from their appointments.

    Recomputing from the appointments (rather than adjusting counters) keeps the facts right
    whatever order appointments arrive in, and after updates, cancellations and moves. The
    patients are locked first (``patients_lock``; the sync services already hold the lock):
    two syncs of one patient's appointments at once each count the other's.
    """
    patient_ids = {pk for pk in patient_ids if pk}
    case_ids = {pk for pk in case_ids if pk}
    patients_lock(practice=practice, patient_ids=patient_ids)
    if patient_ids:
        _patient_facts_update(Patient.objects.filter(practice=practice, pk__in=patient_ids))
    if case_ids:
        Case.objects.filter(practice=practice, pk__in=case_ids).update(**_facts_of("case"))


def _patient_facts_update(patients: models.QuerySet) -> None:
    facts = _facts_of("patient")
    facts["first_visit_date"] = Coalesce("emr_first_visit_date", facts["first_visit_date"])
    patients.update(**facts)
    # Month and day of the (possibly new) first visit, for the anniversary trigger's index.
    patients.update(
        first_visit_month=ExtractMonth("first_visit_date"),
        first_visit_day=ExtractDay("first_visit_date"),
    )


@transaction.atomic
def practice_local_dates_refresh(*, practice: Practice) -> None:
    """After a change of the practice's time zone: every appointment's local date, and every
    patient's and case's visit facts, in the new zone (a few set-wise statements)."""
    patients_lock(
        practice=practice,
        patient_ids=Patient.objects.filter(practice=practice).values_list("pk", flat=True),
    )
    Appointment.objects.filter(practice=practice).update(
        local_date=TruncDate("start", tzinfo=practice.tz)
    )
    _patient_facts_update(Patient.objects.filter(practice=practice))
    Case.objects.filter(practice=practice).update(**_facts_of("case"))
