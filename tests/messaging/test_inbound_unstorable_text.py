"""An inbound SMS is kept whatever its text holds (issue 13, item 6): a NUL character or a
lone surrogate, which PostgreSQL cannot store, is dropped or replaced, never a server error."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone
from twilio.request_validator import RequestValidator

from messaging.models import InboundMessage
from messaging.webhook_services import twilio_inbound_receive
from tests.factories import PatientFactory, PracticeFactory

pytestmark = pytest.mark.django_db

TOKEN = "test-twilio-auth-token"
PATH = "/webhooks/twilio/inbound"


@pytest.fixture(autouse=True)
def _twilio_token(settings):
    settings.TWILIO_AUTH_TOKEN = TOKEN


@pytest.fixture
def practice():
    return PracticeFactory(sms_from="+13125559999")


@pytest.fixture
def patient(practice):
    return PatientFactory(practice=practice, phone="+13125550123")


def signed_post(params: dict):
    signature = RequestValidator(TOKEN).compute_signature("https://trackstat.test" + PATH, params)
    return Client().post(PATH, params, headers={"X-Twilio-Signature": signature})


def test_a_text_with_nul_characters_is_stored_without_them(practice, patient):
    params = {
        "MessageSid": "SM\x00nul",
        "From": patient.phone,
        "To": practice.sms_from,
        "Body": "See you\x00 at 3",
    }
    response = signed_post(params)
    assert response.status_code == 200, response.content
    stored = InboundMessage.objects.get()
    assert stored.body == "See you at 3"
    assert stored.patient == patient
    assert stored.provider_message_id == "SMnul"


def test_nul_characters_in_the_numbers_are_dropped_too(practice, patient):
    params = {
        "MessageSid": "SM1",
        "From": "+1312555\x000123",
        "To": "+1312\x005559999",
        "Body": "x",
    }
    response = signed_post(params)
    assert response.status_code == 200, response.content
    stored = InboundMessage.objects.get()
    assert (stored.practice, stored.patient, stored.to_number) == (
        practice,
        patient,
        practice.sms_from,
    )


def test_a_lone_surrogate_is_stored_as_the_replacement_character(practice, patient):
    # Form posts decode invalid UTF-8 as U+FFFD already; a surrogate can still reach the
    # service from other callers.
    params = {"MessageSid": "SM2", "From": patient.phone, "To": practice.sms_from}
    result = twilio_inbound_receive(params={**params, "Body": "ok \ud83d then"}, now=timezone.now())
    assert result.handled_as == "inbox"
    assert InboundMessage.objects.get().body == "ok \ufffd then"
