"""Telling the EMR (DESIGN §4.1.1): the events feed, webhook endpoints and deliveries."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import socket
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from patients.models import OptOutSource
from patients.services import patient_opt_out_set
from tests.factories import PatientFactory
from tests.webhook_receiver import receiver_start
from trackstat.credentials import secret_decrypt
from trackstat.events import event_emit
from trackstat.models import (
    DeliveryStatus,
    Event,
    EventType,
    Role,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from trackstat.services import api_key_create
from trackstat.webhook_send import RETRY_OFFSETS, signature_header, webhook_deliveries_send_due

T0 = dt.datetime(2026, 12, 8, 15, 0, tzinfo=dt.UTC)
PUBLIC_URL = "https://hooks.emr.example/trackstat"


@pytest.fixture
def public_dns(monkeypatch):
    """Host names resolve to a public documentation-range address (no network needed)."""

    def fake(host, port, *args, **kwargs):
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (host, port))]
        if host == "localhost":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        if host.startswith("10.") or host == "intranet.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake)


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    started = []

    def start(answers):
        receiver, server = receiver_start(answers)
        started.append(server)
        return receiver

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def _emit(practice, n=1, type=EventType.PATIENT_OPTED_OUT):
    return [
        event_emit(
            practice=practice,
            type=type,
            data={"patient_external_id": f"P{i}", "channel": "sms", "source": "staff"},
            at=T0,
        )
        for i in range(n)
    ]


# --- the feed ------------------------------------------------------------------------------


def test_events_feed_pages_oldest_first_with_an_opaque_cursor(api, practice, other_practice):
    _emit(practice, 250)
    _emit(other_practice, 3)
    first = api.get("/api/v1/events").json()
    assert [e["data"]["patient_external_id"] for e in first["results"][:2]] == ["P0", "P1"]
    assert len(first["results"]) == 100
    event = first["results"][0]
    assert set(event) == {"id", "type", "created_at", "data"}
    assert event["type"] == "patient.opted_out"
    assert event["created_at"] == "2026-12-08T15:00:00Z"
    assert not first["next_cursor"].isdigit()
    second = api.get("/api/v1/events", {"after": first["next_cursor"]}).json()
    third = api.get("/api/v1/events", {"after": second["next_cursor"]}).json()
    assert len(second["results"]) == 100
    assert len(third["results"]) == 50
    ids = [e["id"] for page in (first, second, third) for e in page["results"]]
    assert ids == sorted(ids)
    assert len(set(ids)) == 250
    empty = api.get("/api/v1/events", {"after": third["next_cursor"]}).json()
    assert empty == {"results": [], "next_cursor": third["next_cursor"]}
    # The same cursor answers the same page: ids never change.
    assert api.get("/api/v1/events", {"after": first["next_cursor"]}).json() == second


def test_events_feed_refuses_a_cursor_it_did_not_give(api):
    response = api.get("/api/v1/events", {"after": "not-a-cursor!"})
    assert response.status_code == 400
    assert "after" in response.json()["errors"]


def test_events_feed_needs_a_key_or_a_member(practice, member_client):
    assert Client().get("/api/v1/events").status_code in (401, 403)
    assert member_client(Role.USER, practice).get("/api/v1/events").status_code == 200


# --- endpoints -----------------------------------------------------------------------------


def test_webhook_create_shows_the_secret_once_and_stores_it_encrypted(api, practice, public_dns):
    response = api.post(
        "/api/v1/webhooks",
        {"url": PUBLIC_URL, "events": ["appointment.confirmation_changed"]},
        content_type="application/json",
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "url", "events", "secret"}
    endpoint = WebhookEndpoint.objects.get(pk=body["id"], practice=practice)
    assert body["secret"] not in endpoint.secret_encrypted
    assert secret_decrypt(endpoint.secret_encrypted) == body["secret"]
    listed = api.get("/api/v1/webhooks").json()["results"]
    assert listed == [
        {"id": body["id"], "url": PUBLIC_URL, "events": ["appointment.confirmation_changed"]}
    ]
    assert api.delete(f"/api/v1/webhooks/{body['id']}").status_code == 204
    assert not WebhookEndpoint.objects.filter(pk=body["id"]).exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"url": PUBLIC_URL, "events": ["appointment.moved"]}, "events"),
        ({"url": PUBLIC_URL, "events": []}, "events"),
        ({"url": PUBLIC_URL}, "events"),
        ({"events": ["message.failed"]}, "url"),
        ({"url": "ftp://hooks.emr.example/x", "events": ["message.failed"]}, "url"),
        ({"url": "http://127.0.0.1:8080/x", "events": ["message.failed"]}, "url"),
        ({"url": "http://localhost/x", "events": ["message.failed"]}, "url"),
        ({"url": "https://intranet.example/x", "events": ["message.failed"]}, "url"),
        ({"url": "http://[::1]/x", "events": ["message.failed"]}, "url"),
        ({"url": "http://169.254.169.254/latest", "events": ["message.failed"]}, "url"),
    ],
)
def test_webhook_create_refuses_bad_input_naming_the_field(api, public_dns, payload, field):
    response = api.post("/api/v1/webhooks", payload, content_type="application/json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not WebhookEndpoint.objects.exists()


def test_private_targets_are_allowed_by_the_setting(api, public_dns, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    response = api.post(
        "/api/v1/webhooks",
        {"url": "http://127.0.0.1:8080/x", "events": ["message.failed"]},
        content_type="application/json",
    )
    assert response.status_code == 201


def test_webhooks_are_for_administrators_and_their_own_practice(
    practice, other_practice, member_client, public_dns
):
    payload = {"url": PUBLIC_URL, "events": ["message.failed"]}
    manager = member_client(Role.MANAGER, practice)
    assert manager.get("/api/v1/webhooks").status_code == 403
    assert manager.post("/api/v1/webhooks", payload, "application/json").status_code == 403
    admin = member_client(Role.ADMINISTRATOR, practice)
    created = admin.post("/api/v1/webhooks", payload, "application/json")
    assert created.status_code == 201
    other_key = api_key_create(practice=other_practice, name="EMR").secret
    other = Client(headers={"Authorization": f"Api-Key {other_key}"})
    assert other.get("/api/v1/webhooks").json()["results"] == []
    assert other.delete(f"/api/v1/webhooks/{created.json()['id']}").status_code == 404
    assert Client().get("/api/v1/webhooks").status_code in (401, 403)
    assert admin.put(f"/api/v1/webhooks/{created.json()['id']}").status_code == 405


# --- deliveries ----------------------------------------------------------------------------


def _endpoint(api, url, events=("patient.opted_out",)):
    response = api.post(
        "/api/v1/webhooks", {"url": url, "events": list(events)}, content_type="application/json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_an_event_is_posted_signed_to_subscribed_endpoints_only(api, practice, receiver):
    hook = receiver([200])
    other = receiver([200])
    created = _endpoint(api, hook.url)
    _endpoint(api, other.url, events=["message.failed"])
    (event,) = _emit(practice)
    assert webhook_deliveries_send_due(now=T0) == {
        "webhooks_delivered": 1,
        "webhook_attempts_failed": 0,
    }
    assert other.received == []
    (request,) = hook.received
    assert hook.signature_valid(request, created["secret"])
    assert not hook.signature_valid(request, created["secret"] + "x")
    assert json.loads(request.body) == {
        "id": event.pk,
        "type": "patient.opted_out",
        "created_at": "2026-12-08T15:00:00Z",
        "data": {"patient_external_id": "P0", "channel": "sms", "source": "staff"},
    }
    assert request.headers["Content-Type"] == "application/json"
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert delivery.attempts == 1
    # Delivered once: a later run posts nothing.
    webhook_deliveries_send_due(now=T0 + dt.timedelta(hours=1))
    assert len(hook.received) == 1


def test_signature_header_format():
    header = signature_header(secret="whsec_abc", body=b'{"a":1}', timestamp=1765206000)
    digest = hmac.new(b"whsec_abc", b'1765206000.{"a":1}', hashlib.sha256).hexdigest()
    assert header == f"t=1765206000,v1={digest}"


def test_retries_follow_the_schedule_then_fail(api, practice, receiver):
    hook = receiver([500])
    _endpoint(api, hook.url)
    _emit(practice)
    delivery = WebhookDelivery.objects.get()
    webhook_deliveries_send_due(now=T0)
    expected = []
    for n, offset in enumerate(RETRY_OFFSETS, start=1):
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.PENDING
        assert delivery.attempts == n
        assert delivery.next_attempt_at == T0 + offset
        expected.append(T0 + offset)
        # Not before it is due.
        webhook_deliveries_send_due(now=T0 + offset - dt.timedelta(seconds=1))
        assert len(hook.received) == n
        webhook_deliveries_send_due(now=T0 + offset)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.next_attempt_at is None
    assert len(hook.received) == 1 + len(RETRY_OFFSETS)
    assert [o for o in RETRY_OFFSETS] == [
        dt.timedelta(minutes=m) for m in (1, 5, 15, 60, 180, 360, 720, 1440)
    ]
    attempts = WebhookAttempt.objects.filter(delivery=delivery)
    assert attempts.count() == 9
    assert set(attempts.values_list("status_code", flat=True)) == {500}


def test_a_late_run_attempts_each_delivery_once(api, practice, receiver):
    hook = receiver([500])
    _endpoint(api, hook.url)
    _emit(practice)
    webhook_deliveries_send_due(now=T0 + dt.timedelta(hours=5))
    assert len(hook.received) == 1


def test_a_target_that_turns_private_is_not_contacted(api, practice, receiver, settings):
    hook = receiver([200])
    _endpoint(api, hook.url)
    _emit(practice)
    # The name was checked when saved; by the time of sending it points inside (or the
    # setting is off): refused, recorded, retried, nothing posted.
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    webhook_deliveries_send_due(now=T0)
    assert hook.received == []
    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code is None
    assert "private" in attempt.error
    assert WebhookDelivery.objects.get().status == DeliveryStatus.PENDING


def test_tick_delivers_what_is_due_at_its_now(api, practice, receiver):
    hook = receiver([200])
    _endpoint(api, hook.url)
    _emit(practice)
    out = StringIO()
    call_command("tick", "--now", (T0 - dt.timedelta(minutes=1)).isoformat(), stdout=out)
    assert hook.received == []
    call_command("tick", "--now", T0.isoformat(), stdout=out)
    assert len(hook.received) == 1
    assert json.loads(out.getvalue().splitlines()[-1])["webhooks_delivered"] == 1


def test_delivery_log_page_lists_attempts_and_resends(
    api, practice, other_practice, member_client, receiver
):
    hook = receiver([500, 200])
    _endpoint(api, hook.url)
    _emit(practice)
    webhook_deliveries_send_due(now=T0)
    delivery = WebhookDelivery.objects.get()
    admin = member_client(Role.ADMINISTRATOR, practice)
    page = admin.get("/settings/webhooks/")
    assert page.status_code == 200
    html = page.content.decode()
    assert hook.url in html
    assert "500" in html
    assert "patient.opted_out" in html
    assert member_client(Role.MANAGER, practice).get("/settings/webhooks/").status_code == 403
    other_admin = member_client(Role.ADMINISTRATOR, other_practice)
    assert (
        other_admin.post(f"/settings/webhooks/deliveries/{delivery.pk}/resend/").status_code == 404
    )
    assert admin.get(f"/settings/webhooks/deliveries/{delivery.pk}/resend/").status_code == 405
    response = admin.post(f"/settings/webhooks/deliveries/{delivery.pk}/resend/")
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert delivery.attempts == 0
    assert delivery.status == DeliveryStatus.PENDING
    webhook_deliveries_send_due(now=delivery.next_attempt_at)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert WebhookAttempt.objects.filter(delivery=delivery).count() == 2


# --- what emits ----------------------------------------------------------------------------


def test_opt_out_and_opt_in_emit_events_with_ids_only(practice):
    patient = PatientFactory(practice=practice)
    for opted_out in (True, False):
        patient_opt_out_set(
            practice=practice,
            patient=patient,
            channel="sms",
            opted_out=opted_out,
            source=OptOutSource.SMS_REPLY,
            actor=None,
        )
    events = list(Event.objects.filter(practice=practice).order_by("pk"))
    assert [(e.type, e.data) for e in events] == [
        (
            "patient.opted_out",
            {"patient_external_id": patient.external_id, "channel": "sms", "source": "sms_reply"},
        ),
        (
            "patient.opted_in",
            {"patient_external_id": patient.external_id, "channel": "sms", "source": "sms_reply"},
        ),
    ]
    assert patient.phone not in json.dumps([e.data for e in events])


def test_emr_sync_opt_out_emits_an_event(api, practice):
    response = api.put(
        "/api/v1/patients/P900",
        {"first_name": "Ann", "last_name": "Lee", "sms_opt_out": True},
        content_type="application/json",
    )
    assert response.status_code in (200, 201), response.content
    (event,) = Event.objects.filter(practice=practice)
    assert event.type == "patient.opted_out"
    assert event.data == {"patient_external_id": "P900", "channel": "sms", "source": "emr"}
