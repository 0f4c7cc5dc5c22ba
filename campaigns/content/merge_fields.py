"""The merge fields a message may use (``{{PatientFirstName}}`` …), and which need what."""

from __future__ import annotations

import re

MERGE_FIELD_RE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")

MERGE_FIELDS = {
    "PatientFirstName": "The patient's first name",
    "PatientLastName": "The patient's last name",
    "PatientFullName": "The patient's first and last name",
    "PracticeName": "Your practice's name",
    "PracticePhone": "Your practice's phone number",
    "ProviderName": "The appointment's (else the patient's primary) provider",
    "AppointmentDate": "The appointment's date",
    "AppointmentTime": "The appointment's time",
    "OnlineSchedulingLink": "Your online scheduling link",
    "UnsubscribeLink": "An unsubscribe link (email only)",
}
EMAIL_ONLY_FIELDS = {"UnsubscribeLink"}
# These need a trigger about an appointment (``TriggerType.has_appointment``).
APPOINTMENT_FIELDS = {"AppointmentDate", "AppointmentTime"}


def merge_fields_in(text: str) -> list[str]:
    return MERGE_FIELD_RE.findall(text or "")
