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


def visit_facts_refresh(
    *,
    practice: Practice,
    patient_ids: Iterable[int] = (),
    case_ids: Iterable[int] = (),
) -> None:
    """Recompute the derived visit facts of these patients and cases from their appointments.

    Recomputing from the appointments (rather than adjusting counters) keeps the facts right
    whatever order appointments arrive in, and after updates, cancellations and moves.
    """
    patient_ids = {pk for pk in patient_ids if pk}
    case_ids = {pk for pk in case_ids if pk}
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
    Appointment.objects.filter(practice=practice).update(
        local_date=TruncDate("start", tzinfo=practice.tz)
    )
    _patient_facts_update(Patient.objects.filter(practice=practice))
    Case.objects.filter(practice=practice).update(**_facts_of("case"))
