"""Whether a patient can get a channel at all (DESIGN §5.6, §7): the address on file, and no
opt-out. Checked when a campaign message is made, again just before any message is sent, and
before staff reply from the Inbox."""

from __future__ import annotations

from messaging.models import Channel
from patients.models import Patient


def address_problem(patient: Patient, channel: str) -> tuple[str, str]:
    """(address, "") when the patient can get ``channel``; ("", reason) when not."""
    if channel == Channel.SMS:
        if patient.sms_opt_out:
            return "", "opted out of text messages"
        return (patient.phone, "") if patient.phone else ("", "no mobile phone")
    if patient.email_opt_out:
        return "", "opted out of email"
    return (patient.email, "") if patient.email else ("", "no email address")
