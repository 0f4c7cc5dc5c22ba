"""The Twilio and SendGrid providers: the official SDKs over real HTTP to the local fake
server (``messaging.fake_providers``), one test per outcome of the error mapping."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import socket

import pytest
import time_machine
import urllib3

from campaigns.engine import tick
from campaigns.language.spec import CampaignSerializer
from campaigns.services import campaign_create
from messaging.fake_providers import FakeProviders
from messaging.models import MessageStatus, OutboundMessage
from messaging.providers import provider_for
from messaging.providers.base import Outgoing, ProviderError
from messaging.providers.sandbox import SandboxProvider
from messaging.providers.sendgrid import SendGridProvider
from messaging.providers.twilio import TwilioProvider
from patients.models import Patient
from tests.campaigns.builders import Clinic, ny
from trackstat.credentials import provider_credentials_set

ACCOUNT_SID = "AC" + "0" * 32
TIMEOUT = 0.5  # the client timeout; the fake's slow answers take longer
PATIENT_NAME = "Zelda"


@pytest.fixture
def fake():
    server = FakeProviders(slow_seconds=TIMEOUT * 4).start()
    yield server
    server.stop()


@pytest.fixture
def provider_settings(settings, fake):
    settings.TWILIO_ACCOUNT_SID = ACCOUNT_SID
    settings.TWILIO_AUTH_TOKEN = "token"
    settings.TWILIO_API_BASE_URL = fake.base_url
    settings.SENDGRID_API_KEY = "SG.key"
    settings.SENDGRID_API_BASE_URL = fake.base_url
    return settings


@pytest.fixture
def twilio(provider_settings) -> TwilioProvider:
    return TwilioProvider(timeout=TIMEOUT)


@pytest.fixture
def sendgrid(provider_settings) -> SendGridProvider:
    return SendGridProvider(timeout=TIMEOUT)


def sms(to: str = "+13125550101", outbox_id: int = 42) -> Outgoing:
    return Outgoing(
        outbox_id=outbox_id,
        practice_id=7,
        channel="sms",
        to=to,
        sender="+13125559999",
        subject="",
        body=f"Happy birthday, {PATIENT_NAME}!",
    )


def email(to: str = "zelda@example.com", outbox_id: int = 43) -> Outgoing:
    return Outgoing(
        outbox_id=outbox_id,
        practice_id=7,
        channel="email",
        to=to,
        sender="office@practice.test",
        subject="We miss you",
        body=f"Hi {PATIENT_NAME}, time for a visit.",
        unsubscribe_url="https://trackstat.test/unsubscribe/Zq3tokenZq3token/",
    )


def send_error(provider, outgoing: Outgoing) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        provider.send(outgoing)
    return caught.value


def kind(error: ProviderError) -> str:
    flags = [name for name in ("retryable", "ambiguous", "opted_out") if getattr(error, name)] or [
        "final"
    ]
    assert len(flags) == 1, flags
    return flags[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- Twilio --------------------------------------------------------------------------------


def test_twilio_sends_with_the_outbox_id_in_the_callback_and_no_patient_metadata(twilio, fake):
    accepted = twilio.send(sms())

    assert accepted.provider_id.startswith("SM")
    [request] = fake.requests
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request.headers["Authorization"].startswith("Basic ")
    form = request.data
    assert form["To"] == "+13125550101"
    assert form["From"] == "+13125559999"
    assert form["Body"] == "Happy birthday, Zelda!"
    assert form["StatusCallback"] == "https://trackstat.test/webhooks/twilio/status?outbox=42"
    assert int(form["ValidityPeriod"]) > 0
    metadata = {k: v for k, v in form.items() if k != "Body"}
    assert PATIENT_NAME not in repr(metadata)
    assert set(form) == {"To", "From", "Body", "StatusCallback", "ValidityPeriod"}


@pytest.mark.parametrize(
    ("to", "code", "expected"),
    [
        ("+15005550004", "21610", "opted_out"),
        ("+15005550001", "21211", "final"),
        ("+15005550009", "21614", "final"),
        ("+15005550429", "20429", "retryable"),
        ("+15005550500", "20500", "retryable"),
    ],
)
def test_twilio_error_answers(twilio, to, code, expected):
    error = send_error(twilio, sms(to=to))
    assert error.code == code
    assert kind(error) == expected
    assert to not in str(error)  # no phone number in exception messages


def test_twilio_bad_credentials_are_final(twilio):
    twilio.client.auth = ("ACsomeoneelse", "x")  # not the account in the URL: 401
    error = send_error(twilio, sms())
    assert (error.code, kind(error)) == ("20003", "final")


def test_twilio_slow_answer_is_ambiguous(twilio, fake):
    error = send_error(twilio, sms(to="+15005550408"))
    assert kind(error) == "ambiguous"
    assert len(fake.requests) == 1  # it did go out


def test_twilio_dropped_connection_after_sending_is_ambiguous(twilio, fake):
    # The request was sent before the connection dropped: Twilio may have accepted it.
    error = send_error(twilio, sms(to="+15005550444"))
    assert (error.code, kind(error)) == ("connection_dropped", "ambiguous")
    assert len(fake.requests) == 1


def test_twilio_connection_refused_is_retryable(provider_settings):
    provider_settings.TWILIO_API_BASE_URL = f"http://127.0.0.1:{free_port()}"
    error = send_error(TwilioProvider(timeout=TIMEOUT), sms())
    assert (error.code, kind(error)) == ("connection_failed", "retryable")


def test_twilio_needs_a_sender(twilio, fake):
    outgoing = Outgoing(**{**sms().__dict__, "sender": ""})
    assert kind(send_error(twilio, outgoing)) == "final"
    assert fake.requests == []


# --- SendGrid ------------------------------------------------------------------------------


def test_sendgrid_sends_with_only_the_outbox_id_as_metadata(sendgrid, fake):
    accepted = sendgrid.send(email())

    [request] = fake.requests
    assert accepted.provider_id
    assert request.path == "/v3/mail/send"
    assert request.headers["Authorization"] == "Bearer SG.key"
    body = request.data
    assert body["personalizations"] == [{"to": [{"email": "zelda@example.com"}]}]
    assert body["from"] == {"email": "office@practice.test"}
    assert body["subject"] == "We miss you"
    assert body["content"] == [
        {"type": "text/plain", "value": "Hi Zelda, time for a visit."},
        {"type": "text/html", "value": "Hi Zelda, time for a visit."},
    ]
    assert body["custom_args"] == {"outbox_id": "43"}
    url = "https://trackstat.test/unsubscribe/Zq3tokenZq3token/"
    assert body["headers"] == {
        "List-Unsubscribe": f"<{url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    metadata = {k: v for k, v in body.items() if k not in ("content", "personalizations")}
    assert PATIENT_NAME not in repr(metadata)


def test_sendgrid_test_sends_have_no_unsubscribe_headers(sendgrid, fake):
    sendgrid.send(Outgoing(**{**email().__dict__, "unsubscribe_url": ""}))
    [request] = fake.requests
    assert "headers" not in request.data


def test_sendgrid_message_id_comes_from_the_response_header(sendgrid, fake, monkeypatch):
    monkeypatch.setattr("secrets.token_urlsafe", lambda _n: "msg-id-1")
    assert sendgrid.send(email()).provider_id == "msg-id-1"


@pytest.mark.parametrize(
    ("local", "code", "expected"),
    [
        ("status-400", "http_400", "final"),
        ("status-429", "http_429", "retryable"),
        ("status-500", "http_500", "retryable"),
        ("slow", "no_answer", "ambiguous"),
        ("drop", "no_answer", "ambiguous"),
    ],
)
def test_sendgrid_error_answers(sendgrid, fake, local, code, expected):
    error = send_error(sendgrid, email(to=f"{local}@example.com"))
    assert (error.code, kind(error)) == (code, expected)
    assert "example.com" not in str(error)
    assert len(fake.requests) == 1


def test_sendgrid_connection_refused_is_retryable(provider_settings):
    provider_settings.SENDGRID_API_BASE_URL = f"http://127.0.0.1:{free_port()}"
    error = send_error(SendGridProvider(timeout=TIMEOUT), email())
    assert (error.code, kind(error)) == ("connection_failed", "retryable")


# --- choosing the provider -----------------------------------------------------------------


def test_provider_for_follows_the_settings(provider_settings, practice):
    provider_settings.SMS_PROVIDER = "twilio"
    provider_settings.EMAIL_PROVIDER = "sendgrid"
    assert isinstance(provider_for("sms", practice), TwilioProvider)
    assert isinstance(provider_for("email", practice), SendGridProvider)
    provider_settings.SMS_PROVIDER = provider_settings.EMAIL_PROVIDER = "sandbox"
    assert isinstance(provider_for("sms", practice), SandboxProvider)
    assert isinstance(provider_for("email", practice), SandboxProvider)


@pytest.mark.django_db
def test_provider_for_sends_with_the_practices_own_twilio_account(
    provider_settings, fake, practice, other_practice
):
    provider_settings.SMS_PROVIDER = "twilio"
    practice_sid = "AC" + "1" * 32
    provider_credentials_set(
        practice=practice,
        actor="test",
        twilio_account_sid=practice_sid,
        twilio_auth_token="practice-token",
    )

    provider_for("sms", practice).send(sms())
    provider_for("sms", other_practice).send(sms(outbox_id=43))

    mine, theirs = fake.requests
    assert mine.path == f"/2010-04-01/Accounts/{practice_sid}/Messages.json"
    assert theirs.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"  # the environment's


@pytest.mark.django_db
def test_provider_for_sends_with_the_practices_own_sendgrid_key(provider_settings, practice):
    provider_settings.EMAIL_PROVIDER = "sendgrid"
    provider_credentials_set(practice=practice, actor="test", sendgrid_api_key="SG.practice")
    provider = provider_for("email", practice)
    assert provider.client.api_key == "SG.practice"


# --- through the engine --------------------------------------------------------------------


def birthday_campaign(clinic: Clinic) -> None:
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


@pytest.mark.django_db
def test_engine_sends_a_birthday_text_through_twilio(provider_settings, fake):
    provider_settings.SMS_PROVIDER = "twilio"
    clinic = Clinic()
    clinic.patient(first_name="Ann", birth_date=dt.date(1980, 6, 15), phone="3125550101")
    birthday_campaign(clinic)

    assert tick(now=ny(2026, 6, 15, 10, 0), send="inline")["messages_sent"] == 1

    message = OutboundMessage.objects.get()
    [request] = fake.requests
    assert message.status == MessageStatus.SENT
    assert message.provider == "twilio"
    assert request.data["To"] == message.to
    assert message.provider_id.startswith("SM")
    assert request.data["StatusCallback"].endswith(f"/webhooks/twilio/status?outbox={message.pk}")


@pytest.mark.django_db
def test_engine_opts_the_patient_out_on_twilio_21610(provider_settings, fake):
    provider_settings.SMS_PROVIDER = "twilio"
    clinic = Clinic()
    ann = clinic.patient(first_name="Ann", birth_date=dt.date(1980, 6, 15), phone="3125550101")
    Patient.objects.filter(pk=ann.pk).update(phone="+15005550004")
    birthday_campaign(clinic)

    tick(now=ny(2026, 6, 15, 10, 0), send="inline")

    message = OutboundMessage.objects.get()
    ann.refresh_from_db()
    assert (message.status, message.error_code) == (MessageStatus.FAILED, "21610")
    assert ann.sms_opt_out
    assert len(fake.requests) == 1


def test_the_sdks_request_logging_is_off():
    """The Twilio SDK logs query strings (the lookup's To number) at INFO, SendGrid's client
    whole bodies at DEBUG: neither reaches our logs."""
    assert logging.getLogger("twilio.http_client").getEffectiveLevel() >= logging.WARNING
    assert logging.getLogger("python_http_client").getEffectiveLevel() >= logging.WARNING


def test_providers_read_the_proxy_environment_once_when_built(provider_settings, fake, monkeypatch):
    # What the environment says when a provider is built is kept: a proxy, or NO_PROXY
    # naming its host. Sending reads the environment no more (each request used to scan it
    # twice for proxies and look for a .netrc).
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.test:3128")
    proxied = [TwilioProvider(timeout=TIMEOUT), SendGridProvider(timeout=TIMEOUT)]
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    direct = [TwilioProvider(timeout=TIMEOUT), SendGridProvider(timeout=TIMEOUT)]

    def transports(pair):
        return [pair[0].client.http_client.transport, pair[1].transport]

    assert [t.proxy for t in transports(proxied)] == ["http://proxy.test:3128"] * 2
    assert all(isinstance(t.manager, urllib3.ProxyManager) for t in transports(proxied))
    assert [t.proxy for t in transports(direct)] == [None, None]
    assert not any(isinstance(t.manager, urllib3.ProxyManager) for t in transports(direct))

    def environment_read(*args, **kwargs):
        raise AssertionError("the environment was read at a request")

    monkeypatch.setattr("messaging.providers.transport.get_environ_proxies", environment_read)
    monkeypatch.setattr("requests.sessions.get_environ_proxies", environment_read)
    monkeypatch.setattr("requests.sessions.get_netrc_auth", environment_read)
    monkeypatch.setattr("requests.utils.get_environ_proxies", environment_read)
    assert direct[0].send(sms()).provider_id.startswith("SM")
    assert direct[1].send(email()).provider_id


def test_a_proxy_with_a_password_gets_it_as_proxy_authorization(provider_settings, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://bob:s3cret@proxy.test:3128")
    monkeypatch.setenv("NO_PROXY", "")
    provider_settings.SENDGRID_API_BASE_URL = "https://api.sendgrid.test"
    transport = SendGridProvider(timeout=TIMEOUT).transport
    assert transport.manager.proxy_headers == {
        "proxy-authorization": "Basic " + base64.b64encode(b"bob:s3cret").decode()
    }


def test_a_private_ca_bundle_is_the_one_verified_against(provider_settings, monkeypatch, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    transport = TwilioProvider(timeout=TIMEOUT).client.http_client.transport
    assert transport.manager.connection_pool_kw["ca_certs"] == str(bundle)
    assert transport.manager.connection_pool_kw["cert_reqs"] == "CERT_REQUIRED"


def test_the_twilio_lookup_goes_out_with_its_query_and_the_accounts_credentials(twilio, fake):
    # A GET: the filters in the query string, no body, HTTP basic auth with the account.
    sent = twilio.send(sms())
    found = twilio.lookup(sms(), sent_after=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    assert found is not None
    assert found.provider_id == sent.provider_id
