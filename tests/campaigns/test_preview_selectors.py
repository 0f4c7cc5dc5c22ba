"""The campaign pages' previews, read by selectors: which appointment a preview uses, and a
message rendered for a real patient."""

from __future__ import annotations

import datetime as dt

import pytest

from campaigns.selectors import message_preview, preview_appointment
from tests.factories import AppointmentFactory, PatientFactory, PracticeFactory

pytestmark = pytest.mark.django_db

AT = dt.datetime(2026, 3, 10, 15, 0, tzinfo=dt.UTC)


def test_a_preview_uses_the_next_upcoming_appointment_else_the_latest():
    patient = PatientFactory()
    AppointmentFactory(patient=patient, start=AT - dt.timedelta(days=30))
    latest = AppointmentFactory(patient=patient, start=AT - dt.timedelta(days=2))
    assert preview_appointment(patient=patient, at=AT) == latest

    AppointmentFactory(patient=patient, start=AT + dt.timedelta(days=9))
    upcoming = AppointmentFactory(patient=patient, start=AT + dt.timedelta(days=1))
    AppointmentFactory(patient=patient, start=AT + dt.timedelta(hours=1), status="cancelled")
    assert preview_appointment(patient=patient, at=AT) == upcoming


def test_a_message_preview_renders_for_the_patient_found_or_says_none_is():
    practice = PracticeFactory()
    message = {"channel": "sms", "subject": "", "body": "Hi {{PatientFirstName}} 😀"}

    empty = message_preview(practice=practice, query="", message=message, at=AT)
    assert empty == {"error": "No patients yet."}

    PatientFactory(practice=practice, first_name="Ada", last_name="Lovelace")
    preview = message_preview(practice=practice, query="Lovelace", message=message, at=AT)
    assert preview["body"] == "Hi Ada 😀"
    assert preview["sms"]["encoding"] == "UCS-2"
    assert preview["non_gsm"] == ["😀"]
    missing = message_preview(practice=practice, query="Nobody", message=message, at=AT)
    assert missing == {"error": "No patient matches “Nobody”."}
