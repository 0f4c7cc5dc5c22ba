"""End to end through real HTTP: the engine sends with the official SDKs to the fake server,
which posts signed delivery callbacks to the app (``live_server``), whose webhooks check the
signatures and move the message — in order, out of order and duplicated.
"""

from __future__ import annotations

import base64
import datetime as dt
import time

import pytest
import time_machine
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from campaigns.engine import tick
from campaigns.language.spec import CampaignSerializer
from campaigns.services import campaign_create
from messaging.fake_providers import FakeProviders
from messaging.models import MessageEvent, MessageStatus, OutboundMessage
from messaging.providers.sendgrid import SendGridProvider
from patients.models import Patient
from tests.campaigns.builders import Clinic, ny

pytestmark = pytest.mark.django_db(transaction=True)

ACCOUNT_SID = "AC" + "2" * 32
TOKEN = "fake-callback-token"
TIMEOUT = 0.5
AT = ny(2026, 6, 15, 10, 0)


@pytest.fixture
def sendgrid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def app_settings(settings, live_server, sendgrid_key):
    settings.PUBLIC_BASE_URL = live_server.url
    settings.TWILIO_ACCOUNT_SID = ACCOUNT_SID
    settings.TWILIO_AUTH_TOKEN = TOKEN
    settings.SENDGRID_API_KEY = "SG.key"
    der = sendgrid_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings.SENDGRID_WEBHOOK_PUBLIC_KEY = base64.b64encode(der).decode()
    settings.SMS_PROVIDER = "twilio"
    settings.EMAIL_PROVIDER = "sendgrid"
    return settings


@pytest.fixture
def start_fake(app_settings, live_server, sendgrid_key):
    """``start_fake(**options)``: the fake server, posting callbacks to the live app."""
    servers: list[FakeProviders] = []

    def start(**options) -> FakeProviders:
        fake = FakeProviders(
            callback_base=live_server.url,
            twilio_auth_token=TOKEN,
            sendgrid_private_key=sendgrid_key,
            slow_seconds=TIMEOUT * 4,
            **options,
        ).start()
        app_settings.TWILIO_API_BASE_URL = fake.base_url
        app_settings.SENDGRID_API_BASE_URL = fake.base_url
        servers.append(fake)
        return fake

    yield start
    for fake in servers:
        fake.stop()


def birthday_campaign(clinic: Clinic, channel: str) -> None:
    step = {"channel": channel, "body": "Happy birthday, {{PatientFirstName}}!"}
    if channel == "email":
        step = {**step, "subject": "Happy birthday", "body": "<p>Happy birthday!</p>"}
    serializer = CampaignSerializer(
        data={
            "name": "Birthday",
            "enabled": True,
            "trigger": {"type": "birthday"},
            "schedule": {"frequency": "daily", "time": "10:00"},
            "messages": [{**step, "delay": {"value": 0, "unit": "days"}}],
        }
    )
    assert serializer.is_valid(), serializer.errors
    with time_machine.travel(ny(2026, 6, 1), tick=False):
        campaign_create(practice=clinic.practice, data=serializer.validated_data, actor=None)


def wait_for_callbacks(fake: FakeProviders, count: int, seconds: float = 5.0) -> None:
    """The fake posts from a thread after its delay: wait until it has had its answers."""
    deadline = time.monotonic() + seconds
    while len(fake.callbacks) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(fake.callbacks) == count, fake.callbacks


def webhook_events(message: OutboundMessage) -> list[tuple[str, str]]:
    return list(
        MessageEvent.objects.filter(message=message, source="webhook").values_list(
            "status", "provider_event_id"
        )
    )


@pytest.mark.parametrize("disorder", [False, True], ids=["in_order", "disordered"])
def test_sms_is_delivered_through_signed_twilio_callbacks(start_fake, disorder):
    fake = start_fake(callback_disorder=disorder)
    clinic = Clinic()
    clinic.patient(first_name="Ann", birth_date=dt.date(1980, 6, 15), phone="3125550101")
    birthday_campaign(clinic, "sms")

    assert tick(now=AT, send="inline")["messages_sent"] == 1
    wait_for_callbacks(fake, 3 if disorder else 2)

    message = OutboundMessage.objects.get()
    assert message.status == MessageStatus.DELIVERED
    assert {status for _url, status in fake.callbacks} == {204}  # signatures accepted
    [url, *_] = {url for url, _status in fake.callbacks}
    assert url.endswith(f"/webhooks/twilio/status?outbox={message.pk}")
    # The send's answer already made it "sent", so the callback's "sent" (early, or late
    # after "delivered") moves nothing; a duplicate "delivered" counts once.
    sid = message.provider_id
    assert webhook_events(message) == [("delivered", f"twilio:{sid}:delivered")]
    assert list(message.events.values_list("status", flat=True)) == [
        "queued",
        "sending",
        "sent",
        "delivered",
    ]


@pytest.mark.parametrize("disorder", [False, True], ids=["in_order", "disordered"])
def test_email_is_delivered_through_signed_sendgrid_events(start_fake, disorder):
    fake = start_fake(callback_disorder=disorder)
    clinic = Clinic()
    clinic.patient(first_name="Ann", birth_date=dt.date(1980, 6, 15), email="ann@example.com")
    birthday_campaign(clinic, "email")

    assert tick(now=AT, send="inline")["messages_sent"] == 1
    wait_for_callbacks(fake, 3 if disorder else 2)

    message = OutboundMessage.objects.get()
    assert message.status == MessageStatus.DELIVERED
    assert {status for _url, status in fake.callbacks} == {204}
    [(status, event_id)] = webhook_events(message)  # "processed" is not a status of ours
    assert status == "delivered"
    assert event_id == f"sendgrid:{message.provider_id}-delivered"


def test_unknown_email_moves_forward_on_its_delivered_event(start_fake, monkeypatch):
    # The send times out (unknown) before the fake's events arrive; they name the outbox id.
    fake = start_fake(callback_delay=TIMEOUT * 2)
    monkeypatch.setattr(
        "messaging.outbox.deliver.provider_for",
        lambda channel, practice: SendGridProvider(timeout=TIMEOUT),
    )
    clinic = Clinic()
    ann = clinic.patient(first_name="Ann", birth_date=dt.date(1980, 6, 15), email="a@b.test")
    Patient.objects.filter(pk=ann.pk).update(email="slow@example.com")
    birthday_campaign(clinic, "email")

    tick(now=AT, send="inline")
    assert OutboundMessage.objects.get().status == MessageStatus.UNKNOWN
    wait_for_callbacks(fake, 2)

    message = OutboundMessage.objects.get()
    assert message.status == MessageStatus.DELIVERED
    assert [status for status, _id in webhook_events(message)] == ["delivered"]
