"""Provider webhooks (DESIGN §7): Twilio status callbacks and inbound SMS, SendGrid events.

Requests are signed here as the providers sign them (Twilio's HMAC with the auth token over
the public URL and the form; SendGrid's ECDSA over timestamp + body with a key pair made in
the test), so the views' real signature checks run.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import Client
from django.utils import timezone
from twilio.request_validator import RequestValidator

from messaging.models import InboundMessage, MessageEvent, OutboundMessage, WebhookEvent
from patients.models import Patient
from tests.clients import CommitClient
from tests.factories import PatientFactory, PracticeFactory
from trackstat.credentials import provider_credentials_set
from trackstat.models import AuditEvent

pytestmark = pytest.mark.django_db

BASE = "https://trackstat.test"  # PUBLIC_BASE_URL of the test settings
TOKEN = "test-twilio-auth-token"
STATUS_PATH = "/webhooks/twilio/status"
INBOUND_PATH = "/webhooks/twilio/inbound"
SENDGRID_PATH = "/webhooks/sendgrid/events"
SID = "SM0123456789abcdef0123456789abcdef"


@pytest.fixture(autouse=True)
def _twilio_token(settings):
    settings.TWILIO_AUTH_TOKEN = TOKEN


@pytest.fixture
def practice():
    return PracticeFactory(name="Spine & Co", phone="+13125550100", sms_from="+13125559999")


@pytest.fixture
def patient(practice):
    return PatientFactory(practice=practice, phone="+13125550123", email="pat@example.test")


def outbound(patient, *, channel="sms", status="sent", provider_id=SID) -> OutboundMessage:
    return OutboundMessage.objects.create(
        practice=patient.practice,
        patient=patient,
        channel=channel,
        to=patient.phone if channel == "sms" else patient.email,
        body="Hello",
        status=status,
        scheduled_for=timezone.now(),
        provider="twilio" if channel == "sms" else "sendgrid",
        provider_id=provider_id,
    )


def twilio_post(path: str, params: dict, *, signed_url: str | None = None, signature=None):
    """POST ``params`` to ``path`` as Twilio would, signed for ``signed_url`` (by default the
    public URL of ``path``); ``signature`` overrides the computed one (None: computed)."""
    if signature is None:
        signature = RequestValidator(TOKEN).compute_signature(signed_url or BASE + path, params)
    headers = {"X-Twilio-Signature": signature} if signature else {}
    return CommitClient().post(path, params, headers=headers)


def status_callback(message: OutboundMessage, status: str, **extra):
    params = {
        "MessageSid": message.provider_id,
        "MessageStatus": status,
        "To": message.to,
        "From": "+13125559999",
        "AccountSid": "AC123",
        **extra,
    }
    return twilio_post(f"{STATUS_PATH}?outbox={message.pk}", params)


def statuses(message: OutboundMessage) -> list[str]:
    return list(message.events.values_list("status", flat=True))


# --- Twilio status callbacks ---------------------------------------------------------------


@pytest.mark.parametrize("status", ["delivered", "undelivered", "failed"])
def test_status_callback_moves_the_message(patient, status):
    message = outbound(patient)

    response = status_callback(message, status)

    assert response.status_code == 204
    message.refresh_from_db()
    assert message.status == status
    event = message.events.get()
    assert event.status == status
    assert event.source == "webhook"
    assert event.provider_event_id == f"twilio:{SID}:{status}"


def test_failed_records_the_error_code(patient):
    message = outbound(patient)

    status_callback(message, "failed", ErrorCode="30003")

    message.refresh_from_db()
    assert message.status == "failed"
    assert message.error_code == "30003"
    assert "30003" in message.status_reason
    patient.refresh_from_db()
    assert not patient.sms_opt_out  # only 21610 means the number opted out


@pytest.mark.parametrize("status", ["queued", "accepted", "sending", "receiving"])
def test_early_and_unknown_statuses_are_ignored(patient, status):
    message = outbound(patient, status="sending")

    assert status_callback(message, status).status_code == 204

    message.refresh_from_db()
    assert message.status == "sending"
    assert not MessageEvent.objects.exists()


def test_a_duplicate_callback_counts_once(patient):
    message = outbound(patient)

    status_callback(message, "delivered")
    assert status_callback(message, "delivered").status_code == 204

    assert MessageEvent.objects.count() == 1


def test_a_late_sent_never_overwrites_delivered(patient):
    message = outbound(patient, status="sending")

    status_callback(message, "delivered")
    status_callback(message, "sent")

    message.refresh_from_db()
    assert message.status == "delivered"
    assert statuses(message) == ["delivered"]


def test_sent_then_delivered_in_order(patient):
    message = outbound(patient, status="sending")

    status_callback(message, "sent")
    status_callback(message, "delivered")

    message.refresh_from_db()
    assert message.status == "delivered"
    assert statuses(message) == ["sent", "delivered"]


def test_a_wrong_outbox_and_sid_pair_is_ignored(patient):
    message = outbound(patient)
    other = outbound(patient, provider_id="SMother")

    # The callback names ``other``'s outbox id with ``message``'s sid.
    params = {"MessageSid": message.provider_id, "MessageStatus": "delivered"}
    response = twilio_post(f"{STATUS_PATH}?outbox={other.pk}", params)
    missing = twilio_post(f"{STATUS_PATH}?outbox=999999", params)
    no_outbox = twilio_post(STATUS_PATH, params)

    assert [response.status_code, missing.status_code, no_outbox.status_code] == [204] * 3
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {"sent"}
    assert not MessageEvent.objects.exists()


def test_error_21610_opts_the_patient_out_of_sms(patient):
    message = outbound(patient)
    queued = outbound(patient, status="queued", provider_id="")

    status_callback(message, "failed", ErrorCode="21610")

    message.refresh_from_db()
    patient.refresh_from_db()
    queued.refresh_from_db()
    assert message.status == "failed"
    assert patient.sms_opt_out
    assert patient.sms_opt_out_source == "provider"
    assert queued.status == "canceled"
    assert AuditEvent.objects.filter(action="patient.sms_opt_out").count() == 1


def test_forged_signature_is_refused(patient):
    message = outbound(patient)
    params = {"MessageSid": SID, "MessageStatus": "delivered"}
    path = f"{STATUS_PATH}?outbox={message.pk}"
    wrong_key = RequestValidator("not-the-token").compute_signature(BASE + path, params)

    responses = [
        twilio_post(path, params, signature=wrong_key),
        twilio_post(path, params, signature=""),  # unsigned
        # Signed, but for another URL (another outbox; the request's own http host).
        twilio_post(path, params, signed_url=f"{BASE}{STATUS_PATH}?outbox=999"),
        twilio_post(path, params, signed_url=f"http://testserver{path}"),
    ]
    tampered = RequestValidator(TOKEN).compute_signature(
        BASE + path, {**params, "MessageStatus": "sent"}
    )
    responses.append(twilio_post(path, params, signature=tampered))

    assert [r.status_code for r in responses] == [403] * 5
    message.refresh_from_db()
    assert message.status == "sent"
    assert not MessageEvent.objects.exists()


def test_without_an_auth_token_everything_is_refused(settings, patient):
    message = outbound(patient)
    settings.TWILIO_AUTH_TOKEN = ""
    params = {"MessageSid": SID, "MessageStatus": "delivered"}
    path = f"{STATUS_PATH}?outbox={message.pk}"
    signature = RequestValidator("").compute_signature(BASE + path, params)

    assert twilio_post(path, params, signature=signature).status_code == 403
    assert not MessageEvent.objects.exists()


PRACTICE_TOKEN = "practice-own-twilio-token"


def test_status_is_checked_with_the_practices_own_token(patient):
    provider_credentials_set(
        practice=patient.practice, actor="test", twilio_auth_token=PRACTICE_TOKEN
    )
    message = outbound(patient)
    params = {"MessageSid": SID, "MessageStatus": "delivered"}
    path = f"{STATUS_PATH}?outbox={message.pk}"

    # The environment's token no longer signs for this practice.
    assert twilio_post(path, params).status_code == 403
    message.refresh_from_db()
    assert message.status == "sent"

    signature = RequestValidator(PRACTICE_TOKEN).compute_signature(BASE + path, params)
    assert twilio_post(path, params, signature=signature).status_code == 204
    message.refresh_from_db()
    assert message.status == "delivered"


def test_status_for_a_practice_without_its_own_token_uses_the_environments(patient):
    other = PracticeFactory()
    provider_credentials_set(practice=other, actor="test", twilio_auth_token=PRACTICE_TOKEN)
    message = outbound(patient)
    params = {"MessageSid": SID, "MessageStatus": "delivered"}
    path = f"{STATUS_PATH}?outbox={message.pk}"

    signed_by_other = RequestValidator(PRACTICE_TOKEN).compute_signature(BASE + path, params)
    assert twilio_post(path, params, signature=signed_by_other).status_code == 403
    assert twilio_post(path, params).status_code == 204


def test_inbound_is_checked_with_the_token_of_the_practice_owning_to(practice, patient):
    other = PracticeFactory()
    provider_credentials_set(practice=practice, actor="test", twilio_auth_token=PRACTICE_TOKEN)
    provider_credentials_set(practice=other, actor="test", twilio_auth_token="other-token")
    params = {"MessageSid": "SMin9", "From": patient.phone, "To": practice.sms_from, "Body": "Hi"}

    signed_by_other = RequestValidator("other-token").compute_signature(BASE + INBOUND_PATH, params)
    assert twilio_post(INBOUND_PATH, params, signature=signed_by_other).status_code == 403
    assert twilio_post(INBOUND_PATH, params).status_code == 403  # the environment's token
    assert not InboundMessage.objects.exists()

    signature = RequestValidator(PRACTICE_TOKEN).compute_signature(BASE + INBOUND_PATH, params)
    assert twilio_post(INBOUND_PATH, params, signature=signature).status_code == 200
    assert InboundMessage.objects.get().practice == practice


@pytest.mark.parametrize("path", [STATUS_PATH, INBOUND_PATH, SENDGRID_PATH])
def test_webhooks_are_post_only(path):
    assert Client().get(path).status_code == 405


def test_status_does_not_log_the_phone_number(patient, caplog):
    message = outbound(patient)
    caplog.set_level("DEBUG")

    twilio_post(
        f"{STATUS_PATH}?outbox=999999",
        {"MessageSid": SID, "MessageStatus": "delivered", "To": patient.phone},
    )
    status_callback(message, "delivered")

    assert patient.phone not in caplog.text
    assert patient.phone.removeprefix("+") not in caplog.text


# --- Twilio inbound SMS --------------------------------------------------------------------


def inbound(practice, body: str, *, sid: str = "SMin1", from_number: str = "+13125550123"):
    params = {
        "MessageSid": sid,
        "AccountSid": "AC123",
        "From": from_number,
        "To": practice.sms_from,
        "Body": body,
    }
    return twilio_post(INBOUND_PATH, params)


EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'


@pytest.mark.parametrize("keyword", ["STOP", " stop ", "Unsubscribe", "quit", "OPTOUT"])
def test_stop_opts_out_and_cancels_queued_sms(practice, patient, keyword):
    queued_sms = outbound(patient, status="queued", provider_id="")
    queued_email = outbound(patient, channel="email", status="queued", provider_id="")

    response = inbound(practice, keyword)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    assert response.content.decode() == EMPTY_TWIML
    patient.refresh_from_db()
    assert patient.sms_opt_out
    assert patient.sms_opt_out_source == "sms_reply"
    assert not patient.email_opt_out
    queued_sms.refresh_from_db()
    queued_email.refresh_from_db()
    assert queued_sms.status == "canceled"
    assert queued_email.status == "queued"
    stored = InboundMessage.objects.get()
    assert (stored.patient, stored.handled_as, stored.body) == (patient, "stop", keyword)


def test_start_opts_back_in(practice, patient):
    inbound(practice, "STOP", sid="SM1")
    response = inbound(practice, "start", sid="SM2")

    assert response.content.decode() == EMPTY_TWIML
    patient.refresh_from_db()
    assert not patient.sms_opt_out
    assert list(InboundMessage.objects.order_by("id").values_list("handled_as", flat=True)) == [
        "stop",
        "start",
    ]
    assert AuditEvent.objects.filter(action="patient.sms_opt_in").count() == 1


def test_help_answers_with_the_practice_name_and_phone(practice, patient):
    response = inbound(practice, " Help")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    assert response.content.decode() == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Message>'
        "Spine &amp; Co: call (312) 555-0100. Reply STOP to opt out."
        "</Message></Response>"
    )
    patient.refresh_from_db()
    assert not patient.sms_opt_out
    assert InboundMessage.objects.get().handled_as == "help"


def test_other_text_lands_in_the_inbox(practice, patient):
    response = inbound(practice, "Can I stop by at 3?")

    assert response.content.decode() == EMPTY_TWIML
    stored = InboundMessage.objects.get()
    assert stored.practice == practice
    assert stored.patient == patient
    assert stored.handled_as == "inbox"
    assert stored.body == "Can I stop by at 3?"
    assert (stored.from_number, stored.to_number) == (patient.phone, practice.sms_from)
    assert stored.read_at is None
    patient.refresh_from_db()
    assert not patient.sms_opt_out


def test_text_from_an_unknown_number_is_kept_without_a_patient(practice, patient):
    inbound(practice, "Who is this?", from_number="+13125550000")

    assert InboundMessage.objects.get().patient is None


def test_stop_from_an_unknown_number_is_stored(practice, patient):
    assert inbound(practice, "STOP", from_number="+13125550000").status_code == 200

    assert InboundMessage.objects.get().handled_as == "stop"
    patient.refresh_from_db()
    assert not patient.sms_opt_out


def test_a_number_matches_only_the_practices_own_patients(practice, patient):
    other_practice = PracticeFactory()
    same_phone_elsewhere = PatientFactory(practice=other_practice, phone=patient.phone)

    inbound(practice, "STOP")

    same_phone_elsewhere.refresh_from_db()
    assert not same_phone_elsewhere.sms_opt_out
    assert Patient.objects.get(pk=patient.pk).sms_opt_out


def test_a_duplicate_inbound_is_stored_once(practice, patient):
    inbound(practice, "STOP", sid="SMdup")
    inbound(practice, "START", sid="SMnext")
    # Twilio redelivers the first STOP: it must not opt the patient out again.
    response = inbound(practice, "STOP", sid="SMdup")

    assert response.status_code == 200
    assert InboundMessage.objects.filter(provider_message_id="SMdup").count() == 1
    assert InboundMessage.objects.count() == 2
    patient.refresh_from_db()
    assert not patient.sms_opt_out


def test_an_unknown_to_number_stores_nothing(practice, patient):
    params = {"MessageSid": "SMx", "From": patient.phone, "To": "+19995550000", "Body": "STOP"}

    response = twilio_post(INBOUND_PATH, params)

    assert response.status_code == 200
    assert response.content.decode() == EMPTY_TWIML
    assert not InboundMessage.objects.exists()
    patient.refresh_from_db()
    assert not patient.sms_opt_out


def test_forged_inbound_is_refused(practice, patient):
    params = {"MessageSid": "SMf", "From": patient.phone, "To": practice.sms_from, "Body": "STOP"}

    forged = twilio_post(INBOUND_PATH, params, signature="bm90IGEgc2lnbmF0dXJl")
    unsigned = twilio_post(INBOUND_PATH, params, signature="")
    other_url = twilio_post(INBOUND_PATH, params, signed_url=BASE + STATUS_PATH)

    assert [forged.status_code, unsigned.status_code, other_url.status_code] == [403] * 3
    assert not InboundMessage.objects.exists()
    patient.refresh_from_db()
    assert not patient.sms_opt_out


# --- SendGrid events -----------------------------------------------------------------------


def sendgrid_post(private_key, events, *, signature: str | None = None, timestamp=None):
    """POST ``events`` as SendGrid would, signed now (or at ``timestamp``, unix seconds)."""
    timestamp = str(int(time.time())) if timestamp is None else timestamp
    payload = json.dumps(events)
    if signature is None:
        raw = private_key.sign((timestamp + payload).encode(), ec.ECDSA(hashes.SHA256()))
        signature = base64.b64encode(raw).decode()
    headers = {}
    if signature:
        headers = {
            "X-Twilio-Email-Event-Webhook-Signature": signature,
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        }
    return CommitClient().post(
        SENDGRID_PATH, payload, content_type="application/json", headers=headers
    )


def sg_event(message: OutboundMessage, kind: str, event_id: str, **extra) -> dict:
    return {
        "email": message.to,
        "timestamp": 1790000000,
        "event": kind,
        "sg_event_id": event_id,
        "sg_message_id": "abc.filter0001",
        "outbox_id": str(message.pk),
        **extra,
    }


@pytest.mark.parametrize(
    ("kind", "status"), [("delivered", "delivered"), ("open", "opened"), ("click", "clicked")]
)
def test_sendgrid_event_moves_the_email(sendgrid_key, patient, kind, status):
    message = outbound(patient, channel="email", provider_id="abc")

    response = sendgrid_post(sendgrid_key, [sg_event(message, kind, "ev1")])

    assert response.status_code == 204
    message.refresh_from_db()
    assert message.status == status
    event = message.events.get()
    assert event.provider_event_id == "sendgrid:ev1"
    assert event.at == dt.datetime.fromtimestamp(1790000000, tz=dt.UTC)
    patient.refresh_from_db()
    assert not patient.email_opt_out


def test_sendgrid_batch_in_order_and_processed_ignored(sendgrid_key, patient):
    message = outbound(patient, channel="email", provider_id="abc")

    sendgrid_post(
        sendgrid_key,
        [
            sg_event(message, "processed", "ev0"),
            sg_event(message, "delivered", "ev1"),
            sg_event(message, "open", "ev2"),
            sg_event(message, "delivered", "ev3"),  # late: never moves back
        ],
    )

    message.refresh_from_db()
    assert message.status == "opened"
    assert statuses(message) == ["delivered", "opened"]


@pytest.mark.parametrize(("kind", "status"), [("bounce", "bounced"), ("spamreport", "spam")])
def test_bounce_and_spam_opt_the_patient_out_of_email(sendgrid_key, patient, kind, status):
    message = outbound(patient, channel="email", provider_id="abc")
    queued_email = outbound(patient, channel="email", status="queued", provider_id="")

    sendgrid_post(sendgrid_key, [sg_event(message, kind, "ev1")])

    message.refresh_from_db()
    patient.refresh_from_db()
    queued_email.refresh_from_db()
    assert message.status == status
    assert patient.email_opt_out
    assert patient.email_opt_out_source == "provider"
    assert not patient.sms_opt_out
    assert queued_email.status == "canceled"


def test_dropped(sendgrid_key, patient):
    message = outbound(patient, channel="email", provider_id="abc")

    sendgrid_post(sendgrid_key, [sg_event(message, "dropped", "ev1", reason="Bounced Address")])

    message.refresh_from_db()
    assert message.status == "dropped"
    patient.refresh_from_db()
    assert (patient.email_opt_out, patient.email_opt_out_source) == (True, "provider")


@pytest.mark.parametrize("kind", ["unsubscribe", "group_unsubscribe"])
def test_unsubscribe_opts_out_of_email(sendgrid_key, patient, kind):
    message = outbound(patient, channel="email", provider_id="abc")

    sendgrid_post(sendgrid_key, [sg_event(message, kind, "ev1")])

    patient.refresh_from_db()
    message.refresh_from_db()
    assert patient.email_opt_out
    assert patient.email_opt_out_source == "unsubscribe"
    assert message.status == "sent"


def test_a_duplicate_sendgrid_event_counts_once(sendgrid_key, patient):
    message = outbound(patient, channel="email", provider_id="abc")

    sendgrid_post(sendgrid_key, [sg_event(message, "delivered", "ev1")])
    response = sendgrid_post(
        sendgrid_key,
        [sg_event(message, "delivered", "ev1"), sg_event(message, "open", "ev1")],
    )

    assert response.status_code == 204
    message.refresh_from_db()
    assert message.status == "delivered"
    assert MessageEvent.objects.count() == 1


def test_sendgrid_events_without_an_email_outbox_are_ignored(sendgrid_key, patient):
    sms = outbound(patient)
    events = [
        {"event": "delivered", "sg_event_id": "ev1", "email": "x@example.test"},
        {"event": "delivered", "sg_event_id": "ev2", "outbox_id": "999999"},
        {"event": "delivered", "sg_event_id": "ev3", "outbox_id": str(sms.pk)},
        "not an event",
    ]

    assert sendgrid_post(sendgrid_key, events).status_code == 204
    assert not MessageEvent.objects.exists()


def test_forged_sendgrid_events_are_refused(sendgrid_key, patient):
    message = outbound(patient, channel="email", provider_id="abc")
    events = [sg_event(message, "bounce", "ev1")]
    stranger = ec.generate_private_key(ec.SECP256R1())

    responses = [
        sendgrid_post(stranger, events),  # signed with another key
        sendgrid_post(sendgrid_key, events, signature=""),  # unsigned
        sendgrid_post(sendgrid_key, events, signature="not base64!"),
    ]
    # Signed for another timestamp than the one sent.
    raw = sendgrid_key.sign(("1" + json.dumps(events)).encode(), ec.ECDSA(hashes.SHA256()))
    responses.append(sendgrid_post(sendgrid_key, events, signature=base64.b64encode(raw).decode()))

    assert [r.status_code for r in responses] == [403] * 4
    message.refresh_from_db()
    patient.refresh_from_db()
    assert message.status == "sent"
    assert not patient.email_opt_out
    assert not MessageEvent.objects.exists()


def test_sendgrid_without_a_public_key_refuses(settings, patient):
    settings.SENDGRID_WEBHOOK_PUBLIC_KEY = ""
    message = outbound(patient, channel="email", provider_id="abc")
    key = ec.generate_private_key(ec.SECP256R1())

    assert sendgrid_post(key, [sg_event(message, "delivered", "ev1")]).status_code == 403
    assert not MessageEvent.objects.exists()


def test_sendgrid_body_that_is_not_an_array(sendgrid_key):
    assert sendgrid_post(sendgrid_key, {"event": "delivered"}).status_code == 400


def test_webhooks_hand_events_to_tasks_without_patient_data(monkeypatch, patient, sendgrid_key):
    """The events are stored, then applied asynchronously: the tasks carry row ids only, and
    what is stored names no patient (no address, no bounce reason text)."""
    queued = []
    monkeypatch.setattr(
        "messaging.tasks.process_webhook_events_task.apply_async",
        lambda args, **options: queued.append(args),
    )
    sms = outbound(patient)
    assert status_callback(sms, "delivered").status_code == 204
    mail = outbound(patient, channel="email", provider_id="abc")
    event = sg_event(mail, "bounce", "ev-1", reason="550 no such user pat@example.test")
    assert sendgrid_post(sendgrid_key, [event]).status_code == 204
    sms.refresh_from_db()
    assert sms.status == "sent"  # not applied in the request
    stored = list(WebhookEvent.objects.order_by("id"))
    assert queued == [([stored[0].pk],), ([stored[1].pk],)]
    for value in (patient.phone, patient.email, patient.first_name, patient.last_name, "550"):
        assert value not in repr(queued)
        assert all(value not in row.payload for row in stored)


# --- events for the EMR (DESIGN §4.1.1) ----------------------------------------------------


def test_a_failed_text_emits_message_failed_without_its_body(patient):
    from trackstat.models import Event

    message = outbound(patient)
    status_callback(message, "failed", ErrorCode="30003")
    status_callback(message, "failed", ErrorCode="30003")  # a duplicate emits nothing more
    (event,) = Event.objects.filter(practice=patient.practice)
    assert event.type == "message.failed"
    assert event.data == {
        "message_id": message.pk,
        "patient_external_id": patient.external_id,
        "channel": "sms",
        "status_reason": message.__class__.objects.get(pk=message.pk).status_reason,
    }
    assert "Hello" not in json.dumps(event.data)


def test_an_inbox_text_emits_inbox_message_received(practice, patient):
    from trackstat.models import Event

    inbound(practice, "Can I stop by at 3?", sid="SMe1")
    inbound(practice, "Who is this?", sid="SMe2", from_number="+13125550000")
    inbound(practice, "Can I stop by at 3?", sid="SMe1")  # redelivered: nothing more
    inbound(practice, "STOP", sid="SMe3")
    events = list(Event.objects.filter(practice=practice).order_by("pk"))
    stored = {m.provider_message_id: m.pk for m in InboundMessage.objects.all()}
    assert [(e.type, e.data) for e in events] == [
        (
            "inbox.message_received",
            {"message_id": stored["SMe1"], "patient_external_id": patient.external_id},
        ),
        ("inbox.message_received", {"message_id": stored["SMe2"], "patient_external_id": None}),
        (
            "patient.opted_out",
            {"patient_external_id": patient.external_id, "channel": "sms", "source": "sms_reply"},
        ),
    ]


def test_a_bounced_email_emits_message_failed(sendgrid_key, patient):
    from trackstat.models import Event

    message = outbound(patient, channel="email", provider_id="")
    sendgrid_post(sendgrid_key, [sg_event(message, "bounce", "sgb1", reason="550 no such user")])
    (event,) = Event.objects.filter(practice=patient.practice, type="message.failed")
    assert event.data["message_id"] == message.pk
    assert event.data["channel"] == "email"
    assert "pat@example.test" not in json.dumps(event.data)
