"""Read-side queries of the patients app, always scoped to one practice."""

from __future__ import annotations

import contextlib
import datetime as dt
import re

from django.db.models import Prefetch, Q, QuerySet

from patients.models import (
    Appointment,
    AppointmentStatus,
    Case,
    Lookup,
    Patient,
    PatientStatus,
    Tag,
)
from trackstat.models import Practice
from trackstat.phones import phone_to_e164

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


# Only what people write phone numbers with: digits, spaces, + ( ) - . and /.
_PHONE_LIKE = re.compile(r"[\d\s+().\-/]+")


def patient_search_q(query: str) -> Q:
    """What staff type in the patient search, as one condition:

    - an email (has "@"): that email, any case (or one that starts with what was typed);
    - a phone number in any common form ("+1 (312) 555-0142", "312.555.0142", "555-0142",
      "0142"), or digits of an external id ("0107" finds DEMO-0107): the phone's digits,
      the number as E.164, or the external id containing it;
    - "Last, First" (the list's own format): last name and first name, each by its start;
    - otherwise every word must match a first or last name (so "First Last" works), an
      email, or an external id exactly.
    """
    query = query.strip()
    if not query:
        return Q()
    if "@" in query:
        return Q(email__iexact=query) | Q(email__istartswith=query)
    if _PHONE_LIKE.fullmatch(query):
        digits = "".join(ch for ch in query if ch.isdigit())
        condition = Q(external_id__iexact=query)
        if len(digits) >= 3:
            condition |= Q(phone__contains=digits) | Q(external_id__icontains=digits)
        with contextlib.suppress(ValueError):  # not a whole number: the digits above
            condition |= Q(phone=phone_to_e164(query))
        return condition
    if "," in query:
        last, first = (part.strip() for part in query.split(",", 1))
        condition = Q(last_name__istartswith=last)
        if first:
            condition &= Q(first_name__istartswith=first)
        return condition | Q(external_id__iexact=query)
    condition = Q()
    for term in query.split():
        condition &= (
            Q(first_name__icontains=term)
            | Q(last_name__icontains=term)
            | Q(email__icontains=term)
            | Q(external_id__iexact=term)
        )
    return condition | Q(external_id__iexact=query)


def patient_list(
    *,
    practice: Practice,
    query: str = "",
    status: str = "",
    tag: str = "",
) -> QuerySet[Patient]:
    """Search (``patient_search_q``); filter by status and tag name.

    ``status`` is a patient status or ``inactive_any`` (every status but active, the
    Active/Inactive filter of campaigns).
    """
    patients = patient_queryset(practice=practice).filter(patient_search_q(query))
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
    *, practice: Practice, confirmation: str, since: dt.datetime, day: dt.date | None = None
) -> QuerySet[Appointment]:
    """The practice's appointments starting at or after ``since`` with this confirmation,
    soonest first, with their patients (the reschedule-requests worklist); with ``day``,
    that local day's only, cancelled and moved ones left out (as the Today page counts)."""
    appointments = Appointment.objects.filter(practice=practice, confirmation=confirmation)
    if day is None:
        appointments = appointments.filter(start__gte=since)
    else:
        appointments = appointments.filter(local_date=day).exclude(
            status__in=[AppointmentStatus.CANCELLED, AppointmentStatus.RESCHEDULED]
        )
    return appointments.select_related("patient", "provider", "purpose").order_by("start", "id")
