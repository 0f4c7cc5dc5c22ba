"""What patients say through their providers changes what the engine sends (issue 6):
STOP stops every campaign's texts, START resumes them, a bounce blocks later email."""

from __future__ import annotations

import datetime as dt

import pytest

from campaigns.engine import tick
from messaging.models import OutboundMessage
from tests.campaigns.builders import Clinic, ny
from tests.campaigns.test_engine import drip, email, sms
from tests.messaging.test_webhooks import TOKEN, inbound, sendgrid_post, sg_event

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _twilio_token(settings):
    settings.TWILIO_AUTH_TOKEN = TOKEN


@pytest.fixture
def clinic() -> Clinic:
    clinic = Clinic()
    clinic.practice.sms_from = "+13125559999"
    clinic.practice.save()
    return clinic


def statuses(patient) -> list[tuple[str, int, str, str]]:
    return list(
        OutboundMessage.objects.filter(patient=patient)
        .order_by("scheduled_for", "id")
        .values_list("campaign__name", "step_position", "status", "status_reason")
    )


def test_stop_stops_every_campaign_and_start_resumes(clinic):
    drip(
        clinic,
        {"type": "birthday"},
        name="Birthday",
        enabled_at=ny(2026, 6, 1),
        messages=[sms("Happy birthday"), sms("Treat yourself", value=2, unit="days")],
    )
    drip(
        clinic,
        {"type": "scheduled_appointment", "when": "days_before", "days": 1},
        name="Reminder",
        enabled_at=ny(2026, 6, 1),
        messages=[sms("See you tomorrow")],
    )
    ann = clinic.patient(birth_date=dt.date(1990, 6, 15), phone="+13125550123")
    clinic.appointment(ann, ny(2026, 6, 19, 9, 0))
    clinic.appointment(ann, ny(2026, 6, 25, 9, 0))
    tick(now=ny(2026, 6, 15, 10, 0), send="inline")
    assert inbound(clinic.practice, "STOP", sid="SMstop").status_code == 200
    tick(now=ny(2026, 6, 17, 10, 0), send="inline")  # birthday step 2
    tick(now=ny(2026, 6, 18, 10, 0), send="inline")  # reminder for the 19th
    assert [s[2:] for s in statuses(ann)] == [
        ("delivered", ""),
        ("skipped", "opted out of text messages"),
        ("skipped", "opted out of text messages"),
    ]
    inbound(clinic.practice, "START", sid="SMstart")
    tick(now=ny(2026, 6, 24, 10, 0), send="inline")  # reminder for the 25th
    assert statuses(ann)[-1][:3] == ("Reminder", 1, "delivered")


def test_a_bounce_blocks_later_email_to_that_address(clinic, sendgrid_key):
    drip(
        clinic,
        {"type": "birthday"},
        name="Birthday",
        enabled_at=ny(2026, 6, 1),
        messages=[
            email("Happy birthday", "<p>Hi</p>"),
            email("A gift", "<p>For you</p>", value=1, unit="days"),
        ],
    )
    ann = clinic.patient(birth_date=dt.date(1990, 6, 15), email="ann@example.test")
    tick(now=ny(2026, 6, 15, 10, 0), send="inline")
    first = OutboundMessage.objects.get(patient=ann, step_position=1)
    response = sendgrid_post(sendgrid_key, [sg_event(first, "bounce", "ev-bounce-1")])
    assert response.status_code == 204
    tick(now=ny(2026, 6, 16, 10, 0), send="inline")
    assert statuses(ann)[-1][2:] == ("skipped", "opted out of email")
    ann.refresh_from_db()
    assert (ann.email_opt_out, ann.email_opt_out_source) == (True, "provider")
