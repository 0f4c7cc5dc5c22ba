"""Read-side queries of the patients app, always scoped to one practice."""

from __future__ import annotations

import datetime as dt

from django.db.models import Prefetch, Q, QuerySet

from patients.models import Appointment, Case, Lookup, Patient, PatientStatus, Tag
from trackstat.models import Practice

PATIENT_LOOKUP_FIELDS = [
    "primary_provider",
    "referral_source",
    "attorney",
    "care_package",
    "fee_schedule",
    "insurance_company",
]


def patient_queryset(*, practice: Practice) -> QuerySet[Patient]:
    """Patients with what their representation needs, in two queries per page."""
    return (
        Patient.objects.filter(practice=practice)
        .select_related(*PATIENT_LOOKUP_FIELDS)
        .prefetch_related(Prefetch("tags", queryset=Tag.objects.order_by("name")))
    )


def patient_list(
    *,
    practice: Practice,
    query: str = "",
    status: str = "",
    tag: str = "",
) -> QuerySet[Patient]:
    """Search by name, phone, email or external id; filter by status and tag name.

    ``status`` is a patient status or ``inactive_any`` (every status but active, the
    Active/Inactive filter of campaigns).
    """
    patients = patient_queryset(practice=practice)
    for term in query.split():
        digits = "".join(ch for ch in term if ch.isdigit())
        condition = (
            Q(first_name__icontains=term)
            | Q(last_name__icontains=term)
            | Q(email__icontains=term)
            | Q(external_id__iexact=term)
        )
        if len(digits) >= 3:
            condition |= Q(phone__contains=digits)
        patients = patients.filter(condition)
    if status == "inactive_any":
        patients = patients.exclude(status=PatientStatus.ACTIVE)
    elif status:
        patients = patients.filter(status=status)
    if tag:
        patients = patients.filter(tags__name=tag)
    return patients.order_by("last_name", "first_name", "id")


def case_queryset(*, practice: Practice) -> QuerySet[Case]:
    return (
        Case.objects.filter(practice=practice)
        .select_related("patient", "case_type", "attorney", "insurance_company")
        .prefetch_related(Prefetch("diagnoses", queryset=Lookup.objects.order_by("name")))
    )


def appointment_queryset(*, practice: Practice) -> QuerySet[Appointment]:
    return (
        Appointment.objects.filter(practice=practice)
        .select_related("patient", "case", "purpose", "provider")
        .prefetch_related(Prefetch("services", queryset=Lookup.objects.order_by("name")))
    )


def patient_ids_by_external_id(practice: Practice, external_ids) -> dict[str, int]:
    """``{external_id: pk}`` of the practice's patients among ``external_ids``."""
    return dict(
        Patient.objects.filter(practice=practice, external_id__in=set(external_ids)).values_list(
            "external_id", "pk"
        )
    )


def appointments_by_confirmation(
    *, practice: Practice, confirmation: str, since: dt.datetime
) -> QuerySet[Appointment]:
    """The practice's appointments starting at or after ``since`` with this confirmation,
    soonest first, with their patients (the reschedule-requests worklist)."""
    return (
        Appointment.objects.filter(practice=practice, confirmation=confirmation, start__gte=since)
        .select_related("patient", "provider", "purpose")
        .order_by("start", "id")
    )
