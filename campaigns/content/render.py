"""Merge-field rendering of a message step for one patient (DESIGN §5.4).

Used by the wizard's preview and, later, by the engine when it materializes a step into an
outbound message. Values come from the patient, the practice and (for appointment triggers) the
appointment; dates and times are in the practice's time zone. In an email's HTML body every
substituted value is HTML-escaped; subjects and SMS bodies are plain text.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping

import phonenumbers
from django.conf import settings
from django.utils.html import escape

from campaigns.content.merge_fields import MERGE_FIELD_RE, MERGE_FIELDS
from messaging.models import Channel
from patients.models import Appointment, Patient
from trackstat.models import Practice

# What {{UnsubscribeLink}} becomes when the caller has no real link (previews): the engine
# passes each message's own unsubscribe URL in ``links``.
UNSUBSCRIBE_PLACEHOLDER_PATH = "/unsubscribe/preview/"


@functools.lru_cache(maxsize=4096)  # the practice's number, once per message the engine makes
def format_phone_national(e164: str) -> str:
    """``+13125550100`` → ``(312) 555-0100``; the input unchanged if it does not parse."""
    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164, "US")
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)


def format_appointment_date(local: dt.datetime) -> str:
    """``Tuesday, March 10`` (no zero padding, whatever the platform's strftime)."""
    return f"{local:%A, %B} {local.day}"


def format_appointment_time(local: dt.datetime) -> str:
    """``9:30 AM``."""
    return f"{local.hour % 12 or 12}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"


def merge_values(
    *,
    patient: Patient,
    practice: Practice,
    appointment: Appointment | None = None,
    links: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The value of every merge field of ``MERGE_FIELDS`` for this patient (plain text)."""
    provider = None
    if appointment is not None and appointment.provider_id:
        provider = appointment.provider
    elif patient.primary_provider_id:
        provider = patient.primary_provider
    local = appointment.start.astimezone(practice.tz) if appointment is not None else None
    values = {
        "PatientFirstName": patient.first_name,
        "PatientLastName": patient.last_name,
        "PatientFullName": patient.full_name,
        "PracticeName": practice.name,
        "PracticePhone": format_phone_national(practice.phone),
        "ProviderName": provider.name if provider else "",
        "AppointmentDate": format_appointment_date(local) if local else "",
        "AppointmentTime": format_appointment_time(local) if local else "",
        "OnlineSchedulingLink": practice.online_scheduling_url,
        "UnsubscribeLink": f"{settings.PUBLIC_BASE_URL}{UNSUBSCRIBE_PLACEHOLDER_PATH}",
    }
    for name, url in (links or {}).items():
        if name in MERGE_FIELDS:
            values[name] = url
    return values


def _substitute(text: str, values: Mapping[str, str], *, html: bool) -> str:
    def replace(match) -> str:
        name = match.group(1)
        if name not in values:
            return match.group(0)  # unknown fields are rejected on save; leave them visible
        return escape(values[name]) if html else values[name]

    return MERGE_FIELD_RE.sub(replace, text or "")


def render_message(
    *,
    channel: str,
    subject: str,
    body: str,
    patient: Patient,
    practice: Practice,
    appointment: Appointment | None = None,
    links: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """``(subject, body)`` with the merge fields replaced for ``patient``.

    ``links`` maps link merge fields (``UnsubscribeLink``, ``OnlineSchedulingLink``) to the URLs
    to use instead of the defaults, e.g. a message's own unsubscribe or tracked link.
    """
    values = merge_values(patient=patient, practice=practice, appointment=appointment, links=links)
    is_email = channel == Channel.EMAIL
    return (
        _substitute(subject, values, html=False) if is_email else "",
        _substitute(body, values, html=is_email),
    )
