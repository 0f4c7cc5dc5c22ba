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
from trackstat.models import Role

pytestmark = pytest.mark.django_db


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


def test_patient_page_lists_the_message_history(member_client):
    clinic = Clinic()
    patient = birthday_sent(clinic)
    client = member_client(Role.USER, practice=clinic.practice)
    page = client.get(reverse("patients:detail", args=[patient.pk])).text
    assert "Birthday · step 1" in page
    assert "Delivered" in page
    assert "Happy birthday Ann" in page
