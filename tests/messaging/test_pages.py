"""The Sandbox page and the patient's message history."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.urls import reverse

from campaigns.engine import tick
from campaigns.language.spec import CampaignSerializer
from campaigns.services import campaign_create
from tests.campaigns.builders import Clinic, ny
from tests.factories import PatientFactory
from trackstat.models import Role

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def birthday_sent(clinic: Clinic):
    serializer = CampaignSerializer(
        data={
            "name": "Birthday",
            "enabled": True,
            "trigger": {"type": "birthday"},
            "schedule": {"frequency": "daily", "time": "10:00"},
            "messages": [{"channel": "sms", "body": "Happy birthday {{PatientFirstName}}"}],
        }
    )
    assert serializer.is_valid(), serializer.errors
    with time_machine.travel(ny(2026, 6, 1), tick=False):
        campaign_create(practice=clinic.practice, data=serializer.validated_data, actor=None)
    patient = clinic.patient(
        first_name="Ann", birth_date=dt.date(1990, 6, 15), phone="+13125550101"
    )
    tick(now=ny(2026, 6, 15, 10, 0), send="inline")
    return patient


def test_sandbox_page_shows_what_was_sent_in_this_practice_only(member_client):
    clinic = Clinic()
    birthday_sent(clinic)
    mine = member_client(Role.USER, practice=clinic.practice)
    page = mine.get(reverse("messaging:sandbox"))
    assert page.status_code == 200
    assert "Happy birthday Ann" in page.text
    assert "+13125550101" in page.text
    other = member_client(Role.ADMINISTRATOR)
    assert "Happy birthday Ann" not in other.get(reverse("messaging:sandbox")).text


def test_sandbox_needs_a_login(client):
    assert client.get(reverse("messaging:sandbox")).status_code == 302


def _history(client, patient, **kwargs):
    return client.get(reverse("messaging:patient_messages", args=[patient.pk]), **kwargs)


def test_patient_page_lists_the_message_history(member_client):
    clinic = Clinic()
    patient = birthday_sent(clinic)
    client = member_client(Role.USER, practice=clinic.practice)
    page = client.get(reverse("patients:detail", args=[patient.pk])).text
    # The patient page holds its place: htmx loads it, a plain link opens it.
    url = reverse("messaging:patient_messages", args=[patient.pk])
    assert "Message history" in page
    assert f'hx-get="{url}" hx-trigger="revealed" hx-swap="outerHTML"' in page
    assert f'<a href="{url}">' in page

    partial = _history(client, patient, headers=HTMX)

    assert partial.status_code == 200
    assert "<html" not in partial.text
    assert '<section class="panel" id="messages"' in partial.text
    assert "Message history" in partial.text
    assert "Birthday · step 1" in partial.text
    assert "Delivered" in partial.text
    assert "Happy birthday Ann" in partial.text
    assert "2026-06-15 10:00 AM" in partial.text  # in the practice's time zone


def test_without_javascript_the_message_history_is_a_page(member_client):
    clinic = Clinic()
    patient = birthday_sent(clinic)
    client = member_client(Role.USER, practice=clinic.practice)
    response = _history(client, patient)
    assert response.status_code == 200
    assert "<html" in response.text
    assert reverse("patients:detail", args=[patient.pk]) in response.text  # back to the patient
    assert "Happy birthday Ann" in response.text


def test_a_patient_without_messages_has_an_empty_history(member_client):
    client = member_client(Role.USER)
    patient = PatientFactory(practice=client.membership.practice)
    response = _history(client, patient, headers=HTMX)
    assert response.status_code == 200
    assert "No messages yet." in response.text


def test_another_practices_patient_history_is_404_and_needs_a_login(client, member_client):
    clinic = Clinic()
    theirs = birthday_sent(clinic)
    mine = member_client(Role.ADMINISTRATOR)
    assert _history(mine, theirs).status_code == 404
    assert _history(mine, theirs, headers=HTMX).status_code == 404
    response = _history(client, theirs)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    member = member_client(Role.USER, practice=clinic.practice)
    assert member.post(reverse("messaging:patient_messages", args=[theirs.pk])).status_code == 405
