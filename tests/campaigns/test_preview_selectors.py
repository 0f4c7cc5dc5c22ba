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


def test_without_a_query_the_preview_is_for_someone_in_the_audience():
    """Issue 16, item 13: not an inactive patient the campaign's filters exclude."""
    from tests.campaigns.builders import Clinic, ny

    clinic = Clinic()
    born = dt.date(1990, 6, 15)
    clinic.patient(
        "A", first_name="Aaron", last_name="Aaronson", status="inactive", birth_date=born
    )
    clinic.patient("B", first_name="Bea", last_name="Birthday", birth_date=born)
    at = ny(2026, 6, 15, 12)
    message = {"channel": "sms", "subject": "", "body": "Hi {{PatientFirstName}}"}
    draft = {"trigger": {"type": "birthday", "offset_days": 0}, "filters": {"status": "active"}}

    preview = message_preview(
        practice=clinic.practice, query="", message=message, at=at, draft=draft
    )

    assert preview["body"] == "Hi Bea"
    # Without a draft (or with a query) the search decides, as before.
    assert (
        message_preview(practice=clinic.practice, query="", message=message, at=at)["body"]
        == "Hi Aaron"
    )
