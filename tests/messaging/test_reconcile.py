"""Reconciling ``unknown`` messages (DESIGN §6): the provider is asked, never sent to again.

The sandbox looks up its own records; Twilio is the official SDK listing messages from the
local fake server, which records a message even when its answer is too slow for the client.
"""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from campaigns.engine import tick
from campaigns.language.spec import CampaignSerializer
from campaigns.services import campaign_create
from messaging import tasks
from messaging.fake_providers import FakeProviders
from messaging.models import MessageStatus, OutboundMessage, SandboxMessage
from messaging.outbox.reconcile import NOT_ACCEPTED, messages_reconcile
from messaging.providers.base import Outgoing
from messaging.providers.sandbox import SandboxProvider
from messaging.providers.twilio import TwilioProvider
from patients.models import Patient
from tests.campaigns.builders import Clinic, ny
from tests.factories import PatientFactory
from trackstat.celery import app

pytestmark = pytest.mark.django_db

ACCOUNT_SID = "AC" + "1" * 32
TIMEOUT = 0.5
SLOW = "+15005550408"
CALLED = dt.datetime(2026, 6, 15, 14, 0, tzinfo=dt.UTC)


def unknown(patient, *, channel="sms", called_at=CALLED, body="See you soon") -> OutboundMessage:
    return OutboundMessage.objects.create(
        practice=patient.practice,
        patient=patient,
        channel=channel,
        to=patient.phone if channel == "sms" else patient.email,
        body=body,
        status=MessageStatus.UNKNOWN,
        scheduled_for=called_at,
        provider_called_at=called_at,
        attempts=1,
    )


def outgoing_of(message: OutboundMessage) -> Outgoing:
    return Outgoing(
        outbox_id=message.pk,
        practice_id=message.practice_id,
        channel=message.channel,
        to=message.to,
        sender=message.practice.sms_from,
        subject=message.subject,
        body=message.body,
    )


# --- the sandbox ---------------------------------------------------------------------------


def test_sandbox_message_recorded_before_the_answer_was_lost_becomes_sent(settings):
    settings.SMS_PROVIDER = "sandbox"
    message = unknown(PatientFactory())
    SandboxProvider().send(outgoing_of(message))  # recorded; the answer never came back

    counts = messages_reconcile(now=CALLED + dt.timedelta(minutes=5))

    message.refresh_from_db()
    assert counts == {"sent": 1, "failed": 0, "waiting": 0}
    assert message.status == MessageStatus.DELIVERED  # the sandbox delivers what it records
    assert message.provider == "sandbox"
    assert message.provider_id == f"SB{message.pk:012d}"
    assert message.sent_at == CALLED
    assert list(message.events.values_list("status", "source")) == [
        ("sent", "reconcile"),
        ("delivered", "reconcile"),
    ]
    assert SandboxMessage.objects.count() == 1

    # Idempotent: a second round finds nothing to do.
    assert messages_reconcile(now=CALLED + dt.timedelta(minutes=10)) == {
        "sent": 0,
        "failed": 0,
        "waiting": 0,
    }
    assert message.events.count() == 2


def test_sandbox_message_never_recorded_waits_then_fails_and_is_never_resent(settings):
    settings.SMS_PROVIDER = "sandbox"
    message = unknown(PatientFactory())

    assert messages_reconcile(now=CALLED + dt.timedelta(minutes=1))["waiting"] == 0  # too new
    assert messages_reconcile(now=CALLED + dt.timedelta(hours=23))["waiting"] == 1
    message.refresh_from_db()
    assert message.status == MessageStatus.UNKNOWN
    assert not message.events.exists()

    assert messages_reconcile(now=CALLED + dt.timedelta(hours=24))["failed"] == 1

    message.refresh_from_db()
    assert (message.status, message.status_reason) == (MessageStatus.FAILED, NOT_ACCEPTED)
    assert message.provider_id == ""
    assert list(message.events.values_list("status", "source")) == [("failed", "reconcile")]
    assert not SandboxMessage.objects.exists()  # never sent a second time


def test_only_unknown_messages_are_reconciled(settings):
    settings.SMS_PROVIDER = "sandbox"
    patient = PatientFactory()
    message = unknown(patient)
    OutboundMessage.objects.filter(pk=message.pk).update(status=MessageStatus.SENDING)

    assert messages_reconcile(now=CALLED + dt.timedelta(days=2)) == {
        "sent": 0,
        "failed": 0,
        "waiting": 0,
    }
    message.refresh_from_db()
    assert message.status == MessageStatus.SENDING


def test_email_without_a_lookup_waits_for_its_webhook_then_fails(settings):
    settings.EMAIL_PROVIDER = "sendgrid"
    settings.SENDGRID_API_KEY = "SG.key"
    settings.SENDGRID_API_BASE_URL = "http://127.0.0.1:9"  # never called: no lookup exists
    message = unknown(PatientFactory(), channel="email")

    assert messages_reconcile(now=CALLED + dt.timedelta(hours=1))["waiting"] == 1
    assert messages_reconcile(now=CALLED + dt.timedelta(hours=25))["failed"] == 1
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED


def test_the_task_reconciles_the_given_ids_and_is_scheduled(settings):
    settings.SMS_PROVIDER = "sandbox"
    chosen, other = unknown(PatientFactory()), unknown(PatientFactory())
    SandboxProvider().send(outgoing_of(chosen))
    SandboxProvider().send(outgoing_of(other))

    tasks.reconcile_messages_task.run(message_ids=[chosen.pk])
    tasks.reconcile_messages_task.run(message_ids=[chosen.pk])  # a redelivery: harmless

    chosen.refresh_from_db()
    other.refresh_from_db()
    assert chosen.status == MessageStatus.DELIVERED
    assert chosen.events.count() == 2
    assert other.status == MessageStatus.UNKNOWN
    entry = app.conf.beat_schedule["reconcile-messages"]
    assert entry["task"] == "messaging.tasks.reconcile_messages_task"
    assert entry["task"] in app.tasks


# --- Twilio against the fake server --------------------------------------------------------


@pytest.fixture
def fake():
    server = FakeProviders(slow_seconds=TIMEOUT * 4).start()
    yield server
    server.stop()


@pytest.fixture
def twilio_settings(settings, fake, monkeypatch):
    settings.SMS_PROVIDER = "twilio"
    settings.TWILIO_ACCOUNT_SID = ACCOUNT_SID
    settings.TWILIO_AUTH_TOKEN = "token"
    settings.TWILIO_API_BASE_URL = fake.base_url
    # The engine's sends give up after TIMEOUT (the fake's slow answer takes longer).
    monkeypatch.setattr(
        "messaging.outbox.deliver.provider_for",
        lambda channel, practice: TwilioProvider(timeout=TIMEOUT),
    )
    return settings


def birthday_text(clinic: Clinic) -> None:
    serializer = CampaignSerializer(
        data={
            "name": "Birthday",
            "enabled": True,
            "trigger": {"type": "birthday"},
            "schedule": {"frequency": "daily", "time": "10:00"},
            "messages": [
                {
                    "channel": "sms",
                    "body": "Happy birthday, {{PatientFirstName}}!",
                    "delay": {"value": 0, "unit": "days"},
                }
            ],
        }
    )
    assert serializer.is_valid(), serializer.errors
    with time_machine.travel(ny(2026, 6, 1), tick=False):
        campaign_create(practice=clinic.practice, data=serializer.validated_data, actor=None)


def test_twilio_timed_out_send_is_found_by_listing_and_becomes_sent(twilio_settings, fake):
    clinic = Clinic()
    ann = clinic.patient(first_name="Ann", birth_date=dt.date(1980, 6, 15), phone="3125550101")
    Patient.objects.filter(pk=ann.pk).update(phone=SLOW)
    birthday_text(clinic)
    at = ny(2026, 6, 15, 10, 0)

    tick(now=at, send="inline")

    message = OutboundMessage.objects.get()
    assert message.status == MessageStatus.UNKNOWN
    assert len(fake.requests) == 1  # it went out, and the fake accepted it
    [accepted] = fake.messages

    counts = messages_reconcile(now=at + dt.timedelta(minutes=5))

    message.refresh_from_db()
    assert counts["sent"] == 1
    assert message.status == MessageStatus.SENT
    assert (message.provider, message.provider_id) == ("twilio", accepted["sid"])
    assert message.sent_at == at
    assert message.events.filter(status="sent", source="reconcile").count() == 1
    listing = fake.requests[-1]
    assert (listing.method, listing.data["To"], listing.data["From"]) == (
        "GET",
        SLOW,
        clinic.practice.sms_from,
    )
    assert "DateSent>" in listing.data
    assert [r.method for r in fake.requests].count("POST") == 1  # never sent again


def test_twilio_lookup_does_not_find_what_the_fake_never_saw(twilio_settings, fake):
    message = unknown(PatientFactory())
    twilio = TwilioProvider(timeout=TIMEOUT)

    assert twilio.lookup(outgoing_of(message), sent_after=CALLED) is None
    assert messages_reconcile(now=CALLED + dt.timedelta(minutes=5))["waiting"] == 1
    message.refresh_from_db()
    assert message.status == MessageStatus.UNKNOWN
    assert [r.method for r in fake.requests] == ["GET", "GET"]


def test_twilio_lookup_matches_the_exact_body_and_skips_known_sids(twilio_settings, fake):
    twilio = TwilioProvider(timeout=TIMEOUT)
    patient = PatientFactory()
    first = twilio.send(outgoing_of(unknown(patient)))
    message = unknown(patient)
    outgoing = outgoing_of(message)

    assert twilio.lookup(outgoing, sent_after=CALLED).provider_id == first.provider_id
    assert (
        twilio.lookup(outgoing, sent_after=CALLED, exclude=frozenset({first.provider_id})) is None
    )
    other_body = Outgoing(**{**outgoing.__dict__, "body": "See you soon!"})
    assert twilio.lookup(other_body, sent_after=CALLED) is None
