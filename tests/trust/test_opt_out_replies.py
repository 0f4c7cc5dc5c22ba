"""Opt-out in the patient's own words through the inbound webhook (DESIGN §7): one
confirmation text, queued texts canceled, the ledger keeps the wording; look-alikes land in
the Inbox; unsure replies are flagged for staff."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from messaging.models import InboundHandling, InboundMessage, OutboundMessage
from patients.models import ConsentChange
from tests.factories import MembershipFactory, PatientFactory, PracticeFactory
from tests.messaging.test_webhooks import TOKEN, inbound, outbound
from trackstat.models import Role

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _twilio_token(settings):
    settings.TWILIO_AUTH_TOKEN = TOKEN


@pytest.fixture
def practice():
    return PracticeFactory(name="Spine & Co", phone="+13125550100", sms_from="+13125559999")


@pytest.fixture
def patient(practice):
    return PatientFactory(practice=practice, phone="+13125550123", email="pat@example.test")


def test_please_stop_texting_me_opts_out_with_one_confirmation(practice, patient):
    queued_sms = outbound(patient, status="queued", provider_id="")
    queued_email = outbound(patient, channel="email", status="queued", provider_id="")

    response = inbound(practice, "Please stop texting me 🙏", sid="SMw1")

    assert response.status_code == 200
    text = response.content.decode()
    assert text.count("<Message>") == 1
    assert "Spine &amp; Co: you will not get any more texts from us" in text
    patient.refresh_from_db()
    assert patient.sms_opt_out
    queued_sms.refresh_from_db()
    queued_email.refresh_from_db()
    assert (queued_sms.status, queued_email.status) == ("canceled", "queued")
    change = ConsentChange.objects.get(patient=patient)
    assert (change.source, change.wording, change.granted) == (
        "reply",
        "Please stop texting me 🙏",
        False,
    )
    assert InboundMessage.objects.get().handled_as == InboundHandling.OPT_OUT_WORDS

    # Twilio redelivers the same SMS: stored once, not confirmed twice.
    again = inbound(practice, "Please stop texting me 🙏", sid="SMw1")
    assert "<Message>" not in again.content.decode()
    # Said again later: already opted out, no second confirmation.
    later = inbound(practice, "stop texting me!!", sid="SMw2")
    assert "<Message>" not in later.content.decode()
    assert ConsentChange.objects.filter(patient=patient).count() == 1


def test_stop_by_tomorrow_lands_in_the_inbox(practice, patient):
    response = inbound(practice, "stop by tomorrow?", sid="SMw3")
    assert "<Message>" not in response.content.decode()
    patient.refresh_from_db()
    assert not patient.sms_opt_out
    message = InboundMessage.objects.get()
    assert (message.handled_as, message.might_be_opt_out) == ("inbox", False)


def test_an_unsure_reply_is_flagged_in_the_inbox_for_staff(practice, patient):
    inbound(practice, "too many texts from you guys", sid="SMw4")
    patient.refresh_from_db()
    assert not patient.sms_opt_out
    message = InboundMessage.objects.get()
    assert (message.handled_as, message.might_be_opt_out) == ("inbox", True)
    staff = MembershipFactory(practice=practice, role=Role.USER).user
    client = Client()
    client.force_login(staff)
    page = client.get(reverse("messaging:thread", args=[patient.pk]))
    assert page.status_code == 200
    assert "might be an opt-out" in page.text


def test_every_number_of_a_family_phone_is_opted_out(practice, patient):
    sister = PatientFactory(practice=practice, phone=patient.phone)
    inbound(practice, "remove me from your list", sid="SMw5")
    patient.refresh_from_db()
    sister.refresh_from_db()
    assert patient.sms_opt_out
    assert sister.sms_opt_out
    assert not OutboundMessage.objects.exists()
