"""Issue 18's "Done when", end to end: the official Twilio SDK talks HTTP to the local fake
provider server, the patient's reply arrives as a signed Twilio inbound webhook, and the EMR's
webhook receiver is a local HTTP server that answers 500 twice, then 200."""

from __future__ import annotations

import datetime as dt
import json
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.test import Client
from twilio.request_validator import RequestValidator

from campaigns.models import Enrollment
from messaging.fake_providers import FakeProviders
from patients.models import Appointment
from tests.campaigns.builders import Clinic, ny
from tests.campaigns.test_engine import drip, sms
from tests.clients import CommitClient
from tests.webhook_receiver import receiver_start
from trackstat.models import WebhookAttempt
from trackstat.services import api_key_create

pytestmark = pytest.mark.django_db

ACCOUNT_SID = "AC" + "1" * 32
TOKEN = "e2e-twilio-auth-token"
VISIT = ny(2026, 12, 8, 14, 0)
ASKED_AT = ny(2026, 12, 6, 10, 0)
REPLIED_AT = ASKED_AT + dt.timedelta(minutes=30)


@pytest.fixture
def fake():
    server = FakeProviders().start()
    yield server
    server.stop()


@pytest.fixture
def emr_receiver():
    receiver, server = receiver_start([200, 500, 500, 200])
    yield receiver
    server.shutdown()
    server.server_close()


def tick_at(at: dt.datetime) -> dict:
    out = StringIO()
    call_command("tick", "--now", at.isoformat(), stdout=out)
    return json.loads(out.getvalue().splitlines()[-1])


def test_a_reminder_answered_yes_confirms_stops_the_next_step_and_tells_the_emr(
    settings, fake, emr_receiver
):
    settings.SMS_PROVIDER = "twilio"
    settings.TWILIO_ACCOUNT_SID = ACCOUNT_SID
    settings.TWILIO_AUTH_TOKEN = TOKEN
    settings.TWILIO_API_BASE_URL = fake.base_url
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    clinic = Clinic()
    ann = clinic.patient(first_name="Ann", phone="+13125550101")
    visit = clinic.appointment(ann, VISIT)
    drip(
        clinic,
        {"type": "scheduled_appointment", "when": "days_before", "days": 2},
        enabled_at=ny(2026, 11, 1),
        name="Reminder",
        messages=[
            {
                **sms("See you {{AppointmentDate}} at {{AppointmentTime}}."),
                "ask_confirmation": True,
            },
            sms("See you tomorrow at {{AppointmentTime}}.", value=1, unit="days"),
        ],
        goal={"type": "confirmed"},
    )
    # The EMR connector subscribes to confirmation changes.
    key = api_key_create(practice=clinic.practice, name="EMR").secret
    api = Client(headers={"Authorization": f"Api-Key {key}"})
    hook = api.post(
        "/api/v1/webhooks",
        {"url": emr_receiver.url, "events": ["appointment.confirmation_changed"]},
        content_type="application/json",
    )
    assert hook.status_code == 201
    secret = hook.json()["secret"]

    # 1. The reminder that asks goes out through the Twilio SDK.
    tick_at(ASKED_AT)
    [asked] = fake.requests
    assert asked.data["To"] == "+13125550101"
    assert asked.data["Body"].startswith(
        "See you Tuesday, December 8 at 2:00 PM.\nReply C to confirm, R to reschedule"
    )
    # Asking set "requested", and the EMR heard it at once (its receiver answered 200).
    [first] = emr_receiver.received
    assert emr_receiver.signature_valid(first, secret)
    assert json.loads(first.body)["data"]["confirmation"] == "requested"

    # 2. Ann answers "yes 👍": a signed inbound webhook, as Twilio sends it.
    params = {
        "MessageSid": "SM" + "a" * 32,
        "AccountSid": ACCOUNT_SID,
        "From": "+13125550101",
        "To": clinic.practice.sms_from,
        "Body": "yes 👍",
    }
    signature = RequestValidator(TOKEN).compute_signature(
        "https://trackstat.test/webhooks/twilio/inbound", params
    )
    with time_machine.travel(REPLIED_AT, tick=False):
        response = CommitClient().post(
            "/webhooks/twilio/inbound", params, headers={"X-Twilio-Signature": signature}
        )
    assert response.status_code == 200

    visit = Appointment.objects.get(pk=visit.pk)
    assert visit.confirmation == "confirmed"
    # 3. The acknowledgement went out through Twilio too.
    ack = fake.requests[-1]
    assert len(fake.requests) == 2
    assert ack.data["Body"] == "Thanks, you're confirmed for Tue Dec 8 at 2:00 PM."

    # 4. The confirmation reaches the EMR: the receiver answers 500, 500, then 200; the
    # retries come from the database at +1 and +5 minutes.
    tick_at(REPLIED_AT)
    tick_at(REPLIED_AT + dt.timedelta(seconds=59))  # not due yet
    tick_at(REPLIED_AT + dt.timedelta(minutes=1))
    tick_at(REPLIED_AT + dt.timedelta(minutes=5))
    first, *confirmed = emr_receiver.received
    assert len(confirmed) == 3
    bodies = [json.loads(r.body) for r in confirmed]
    assert len({b["id"] for b in bodies}) == 1  # the same event, retried
    for request in confirmed:
        assert emr_receiver.signature_valid(request, secret)
    assert bodies[-1]["type"] == "appointment.confirmation_changed"
    assert bodies[-1]["data"] == {
        "appointment_external_id": visit.external_id,
        "patient_external_id": ann.external_id,
        "confirmation": "confirmed",
        "confirmation_at": "2026-12-06T15:30:00Z",
    }
    assert "Ann" not in json.dumps(bodies)  # ids only, no PHI
    codes = list(WebhookAttempt.objects.order_by("at", "pk").values_list("status_code", flat=True))
    assert codes == [200, 500, 500, 200]
    tick_at(REPLIED_AT + dt.timedelta(hours=1))
    assert len(emr_receiver.received) == 4  # delivered: never again

    # 5. The second reminder step is not sent: goal confirmed.
    tick_at(ASKED_AT + dt.timedelta(days=1))
    assert len(fake.requests) == 2
    assert Enrollment.objects.get(patient=ann).exit_reason == "goal_met"
