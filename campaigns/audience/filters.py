"""Filters (DESIGN §5.2) compiled to ``Q`` objects on Patient (and, for filters about the
triggering appointment, on Appointment). Absent filters do not narrow; lists mean "any of"."""

from __future__ import annotations

import calendar
import datetime as dt
from decimal import Decimal

from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Lower

from campaigns.audience.triggers import RunContext
from patients.models import (
    UPCOMING_STATUSES,
    Appointment,
    AppointmentService,
    Case,
    CaseDiagnosis,
    Lookup,
    PatientStatus,
    PatientTag,
)


def years_before(day: dt.date, years: int) -> dt.date:
    """The latest birth date whose ``years``-th birthday falls on or before ``day``.

    ``day`` ``years`` years earlier; 29 February becomes 28 February in a common year. A 29
    February birthday falls on 28 February in a common year (as for the birthday trigger), so
    from 28 February of a common year the leap year's 29 February counts too.
    """
    year = day.year - years
    if (day.month, day.day) == (2, 28) and not calendar.isleap(day.year) and calendar.isleap(year):
        return dt.date(year, 2, 29)
    try:
        return day.replace(year=year)
    except ValueError:
        return day.replace(year=year, day=28)


def appointment_q(filters: dict) -> Q:
    """The purpose, (appointment) provider and confirmation filters, as a condition on an
    appointment."""
    condition = Q()
    if filters.get("appointment_purposes"):
        condition &= Q(purpose__name__in=filters["appointment_purposes"])
    if filters.get("appointment_confirmations"):
        condition &= Q(confirmation__in=filters["appointment_confirmations"])
    providers = filters.get("providers")
    if providers and providers["match"] == "appointment":
        condition &= Q(provider__name__in=providers["names"])
    return condition


def _any(model, practice_id: int, *conditions: Q, **lookups) -> Exists:
    # The practice as a constant, besides the patient: PostgreSQL plans an EXISTS inside an
    # OR as a hashed subplan over every row the EXISTS matches for any patient, which without
    # it means every practice's rows.
    return Exists(
        model.objects.filter(
            *conditions, practice_id=practice_id, patient_id=OuterRef("pk"), **lookups
        )
    )


def _lookup_ids(practice_id: int, names: list[str]):
    """The practice's lookup values of these names: matching a foreign key against their ids
    (rather than joining on the name) lets PostgreSQL read only this practice's rows."""
    return Lookup.objects.filter(practice_id=practice_id, name__in=names).values("id")


def filter_conditions(
    filters: dict, ctx: RunContext, *, appointment_trigger: bool
) -> list[tuple[str, Q]]:
    """Each selected filter as (name, condition on Patient), in a stable order.

    With ``appointment_trigger`` the appointment filters are left to the trigger, which
    applies them to the appointment it is about.
    """
    conditions: list[tuple[str, Q]] = []
    today = ctx.today
    practice = ctx.practice.pk

    def add(name: str, condition: Q) -> None:
        conditions.append((name, condition))

    tags = filters.get("tags")
    if tags and tags["include"]:
        add("tags.include", Q(_any(PatientTag, practice, tag__name__in=tags["include"])))
    if tags and tags["exclude"]:
        add("tags.exclude", ~Q(_any(PatientTag, practice, tag__name__in=tags["exclude"])))
    status = filters.get("status")
    if status == "active":
        add("status", Q(status=PatientStatus.ACTIVE))
    elif status == "inactive":
        add("status", ~Q(status=PatientStatus.ACTIVE))
    if "has_future_appointment" in filters:
        future = Q(_any(Appointment, practice, start__gt=ctx.at, status__in=UPCOMING_STATUSES))
        add("has_future_appointment", future if filters["has_future_appointment"] else ~future)
    if not appointment_trigger:
        appointment = appointment_q(filters)
        if appointment:
            add("appointment", Q(_any(Appointment, practice, appointment)))
    providers = filters.get("providers")
    if providers and providers["match"] == "primary":
        add("providers", Q(primary_provider__name__in=providers["names"]))
    if filters.get("case_types"):
        add("case_types", Q(_any(Case, practice, case_type__name__in=filters["case_types"])))
    if filters.get("diagnoses"):
        add(
            "diagnoses",
            Q(
                Exists(
                    CaseDiagnosis.objects.filter(
                        practice_id=practice,
                        case__patient_id=OuterRef("pk"),
                        diagnosis__name__in=filters["diagnoses"],
                    )
                )
            ),
        )
    if filters.get("attorneys"):
        names = filters["attorneys"]
        add(
            "attorneys",
            Q(attorney__name__in=names)
            | Q(_any(Case, practice, attorney_id__in=_lookup_ids(practice, names))),
        )
    if filters.get("insurance_companies"):
        names = filters["insurance_companies"]
        add(
            "insurance_companies",
            Q(insurance_company__name__in=names)
            | Q(_any(Case, practice, insurance_company_id__in=_lookup_ids(practice, names))),
        )
    for name, field in [
        ("care_packages", "care_package"),
        ("fee_schedules", "fee_schedule"),
        ("referral_sources", "referral_source"),
    ]:
        if filters.get(name):
            add(name, Q(**{f"{field}__name__in": filters[name]}))
    if filters.get("services"):
        add(
            "services",
            Q(
                Exists(
                    AppointmentService.objects.filter(
                        practice_id=practice,
                        appointment__patient_id=OuterRef("pk"),
                        service__name__in=filters["services"],
                    )
                )
            ),
        )
    paid = filters.get("paid_total")
    if paid:
        condition = Q()
        if "min" in paid:
            condition &= Q(paid_total__gte=Decimal(str(paid["min"])))
        if "max" in paid:
            condition &= Q(paid_total__lte=Decimal(str(paid["max"])))
        add("paid_total", condition)
    age = filters.get("age")
    if age:
        # Whole years on the run date: at least N years old ⇔ born on or before today - N years.
        condition = Q(birth_date__isnull=False)
        if "min" in age:
            condition &= Q(birth_date__lte=years_before(today, age["min"]))
        if "max" in age:
            condition &= Q(birth_date__gt=years_before(today, age["max"] + 1))
        add("age", condition)
    if filters.get("sex"):
        add("sex", Q(sex__in=filters["sex"]))
    address = filters.get("address")
    if address:
        condition = Q()
        if address.get("states"):
            condition &= Q(state_lower__in=[s.lower() for s in address["states"]])
        if address.get("cities"):
            condition &= Q(city_lower__in=[c.lower() for c in address["cities"]])
        if address.get("postal_codes"):
            condition &= Q(postal_code__in=address["postal_codes"])
        add("address", condition)
    visits = filters.get("visit_count")
    if visits:
        if "eq" in visits:
            add("visit_count", Q(visit_count=visits["eq"]))
        else:
            condition = Q()
            if "min" in visits:
                condition &= Q(visit_count__gte=visits["min"])
            if "max" in visits:
                condition &= Q(visit_count__lte=visits["max"])
            add("visit_count", condition)
    return conditions


def with_filter_annotations(patients):
    """Annotations the conditions refer to (case-insensitive address matching)."""
    return patients.annotate(state_lower=Lower("state"), city_lower=Lower("city"))
