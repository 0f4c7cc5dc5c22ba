"""HELP answers with the practice's name and its phone as people write it (issue 13, item 23)."""

from __future__ import annotations

import pytest

from messaging.inbound import help_reply
from tests.factories import PracticeFactory
from tests.messaging.test_webhooks import INBOUND_PATH, TOKEN, twilio_post
from trackstat.phones import phone_for_people


@pytest.mark.parametrize(
    ("e164", "shown"),
    [
        ("+13125550100", "(312) 555-0100"),
        ("+16175550199", "(617) 555-0199"),
        ("+442079460958", "+44 20 7946 0958"),  # not a US number: international form
        ("not a number", "not a number"),  # shown as stored rather than lost
    ],
)
def test_phone_for_people(e164, shown):
    assert phone_for_people(e164) == shown


def test_help_with_a_phone():
    assert help_reply(practice_name="Spine & Co", practice_phone="+13125550100") == (
        "Spine & Co: call (312) 555-0100. Reply STOP to opt out."
    )


@pytest.mark.parametrize("phone", ["", "   "])
def test_help_without_a_phone_never_reads_call_nothing(phone):
    reply = help_reply(practice_name="Spine & Co", practice_phone=phone)

    assert "call" not in reply
    assert " ." not in reply
    assert reply == (
        "Spine & Co: reply here with your question and our staff will get back to you. "
        "Reply STOP to opt out."
    )


@pytest.mark.django_db
def test_help_from_a_practice_without_a_phone_through_the_webhook(settings):
    settings.TWILIO_AUTH_TOKEN = TOKEN
    practice = PracticeFactory(name="Quiet Spine", phone="")

    response = twilio_post(
        INBOUND_PATH,
        {"MessageSid": "SMhelp", "From": "+13125550123", "To": practice.sms_from, "Body": "HELP"},
    )

    assert response.status_code == 200
    assert "Quiet Spine: reply here with your question" in response.content.decode()
    assert "call ." not in response.content.decode()
