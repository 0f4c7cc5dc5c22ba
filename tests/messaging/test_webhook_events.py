"""Provider webhooks are stored before they are answered and applied from the table (issue
13, items 13 and 14).

A verified event is never lost because the broker is down: the endpoint answers 2xx once the
event is a row, a task applies it, and a beat sweep applies what is still unprocessed after a
short delay (``manage.py tick`` too). One malformed SendGrid event never loses the others;
every event counts once by its id, including those that move no status; a signed batch
signed too long ago is refused.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from messaging import webhook_events, webhook_intake
from messaging.models import InboundMessage, MessageEvent, WebhookEvent, WebhookKind
from messaging.webhook_events import (
    SWEEP_AFTER,
    webhook_event_process,
    webhook_events_clean,
    webhook_events_process_pending,
)
from messaging.webhook_intake import webhook_events_store
from patients.models import OptOutSource
from patients.services import patient_opt_out_set
from tests.factories import PatientFactory, PracticeFactory, UserFactory
from tests.faults.conftest import needs_postgres
from tests.messaging.test_webhooks import (
    EMPTY_TWIML,
    TOKEN,
    inbound,
    outbound,
    sendgrid_post,
    sg_event,
    status_callback,
    statuses,
)
from trackstat.celery import app as celery_app

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


def later() -> dt.datetime:
    """An instant the sweep takes every row received until now."""
    return timezone.now() + SWEEP_AFTER + dt.timedelta(seconds=1)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens there once the probe is closed


@pytest.fixture
def broker_down():
    """The broker is unreachable: Celery publishes for real (not eagerly) to a closed port."""
    conf = celery_app.conf
    saved = conf.task_always_eager, conf.broker_url, conf.broker_write_url
    conf.task_always_eager = False
    conf.broker_url = conf.broker_write_url = f"redis://127.0.0.1:{_closed_port()}/0"
    celery_app._after_fork()  # drop pooled connections: the next publish connects anew
    yield
    conf.task_always_eager, conf.broker_url, conf.broker_write_url = saved
    celery_app._after_fork()


# --- the broker is down: stored, answered, applied by the sweep -----------------------------


def test_a_status_callback_is_kept_while_the_broker_is_down(broker_down, patient, caplog):
    message = outbound(patient)

    response = status_callback(message, "delivered")

    assert response.status_code == 204
    assert "not queued (OperationalError)" in caplog.text
    stored = WebhookEvent.objects.get()
    assert (stored.kind, stored.processed_at, stored.failed_at) == ("twilio_status", None, None)
    message.refresh_from_db()
    assert message.status == "sent"  # not applied yet
    assert webhook_events_process_pending(now=timezone.now()) == 0  # the task's turn first

    assert webhook_events_process_pending(now=later()) == 1

    message.refresh_from_db()
    assert message.status == "delivered"
    stored.refresh_from_db()
    assert stored.processed_at is not None
    assert stored.payload == ""  # applied: nothing of it is kept
    assert webhook_events_process_pending(now=later()) == 0  # once


def test_sendgrid_events_are_kept_while_the_broker_is_down(broker_down, patient, sendgrid_key):
    message = outbound(patient, channel="email", provider_id="abc")

    response = sendgrid_post(
        sendgrid_key, [sg_event(message, "delivered", "ev1"), sg_event(message, "open", "ev2")]
    )

    assert response.status_code == 204
    assert WebhookEvent.objects.filter(kind="sendgrid", processed_at__isnull=True).count() == 2
    assert webhook_events_process_pending(now=later()) == 2
    message.refresh_from_db()
    assert message.status == "opened"
    assert statuses(message) == ["delivered", "opened"]


def test_an_inbound_sms_that_fails_to_apply_is_kept_and_retried(
    broker_down, practice, patient, monkeypatch, caplog
):
    """An inbound SMS is applied in the request; if that fails, it waits in the table."""
    caplog.set_level("DEBUG")
    real = webhook_events.twilio_inbound_receive

    def failing(**kwargs):
        raise RuntimeError("the database hiccuped")

    monkeypatch.setattr(webhook_events, "twilio_inbound_receive", failing)

    response = inbound(practice, "STOP")

    assert response.status_code == 200
    assert response.content.decode() == EMPTY_TWIML
    stored = WebhookEvent.objects.get()
    assert (stored.attempts, stored.error, stored.failed_at) == (1, "RuntimeError", None)
    assert not InboundMessage.objects.exists()
    for secret in (patient.phone, patient.phone.removeprefix("+"), "STOP"):
        assert secret not in caplog.text

    monkeypatch.setattr(webhook_events, "twilio_inbound_receive", real)
    assert webhook_events_process_pending(now=later()) == 1

    patient.refresh_from_db()
    assert patient.sms_opt_out
    assert InboundMessage.objects.get().handled_as == "stop"


def test_tick_applies_what_is_pending(broker_down, patient):
    message = outbound(patient)
    status_callback(message, "delivered")

    out = StringIO()
    call_command("tick", "--now", "2026-03-08T10:00:00-05:00", stdout=out)

    assert json.loads(out.getvalue())["webhook_events_applied"] == 1
    message.refresh_from_db()
    assert message.status == "delivered"


def test_the_sweep_runs_on_beat():
    tasks = {entry["task"]: entry for entry in celery_app.conf.beat_schedule.values()}

    sweep = tasks["messaging.tasks.sweep_webhook_events_task"]

    assert sweep["schedule"] <= SWEEP_AFTER.total_seconds()


def test_the_sweep_task_applies_and_cleans(patient):
    message = outbound(patient)
    with time_machine.travel(timezone.now() - dt.timedelta(days=31)):
        old = webhook_events_store(
            kind=WebhookKind.TWILIO_STATUS,
            incoming=[webhook_intake.Incoming(key="twilio:old:sent", payload={})],
            now=timezone.now(),
            enqueue=False,
        )
        webhook_event_process(event_id=old[0], now=timezone.now())
    with time_machine.travel(timezone.now() - dt.timedelta(minutes=1)):
        [pending] = webhook_events_store(
            kind=WebhookKind.TWILIO_STATUS,
            incoming=[
                webhook_intake.Incoming(
                    key="twilio:x:delivered",
                    payload={
                        "outbox": str(message.pk),
                        "MessageSid": message.provider_id,
                        "MessageStatus": "delivered",
                    },
                )
            ],
            now=timezone.now(),
            enqueue=False,
        )

    celery_app.tasks["messaging.tasks.sweep_webhook_events_task"].apply()

    assert list(WebhookEvent.objects.values_list("pk", flat=True)) == [pending]
    message.refresh_from_db()
    assert message.status == "delivered"


def test_retention_deletes_only_old_finished_events():
    now = timezone.now()
    rows = {
        name: WebhookEvent.objects.create(
            kind=WebhookKind.SENDGRID,
            received_at=now - age,
            processed_at=now if name.startswith("applied") else None,
            failed_at=now if name == "failed_old" else None,
        )
        for name, age in [
            ("applied_old", dt.timedelta(days=31)),
            ("applied_recent", dt.timedelta(days=29)),
            ("failed_old", dt.timedelta(days=31)),
            ("pending_old", dt.timedelta(days=31)),
        ]
    }

    assert webhook_events_clean(now=now) == 2

    assert set(WebhookEvent.objects.values_list("pk", flat=True)) == {
        rows["applied_recent"].pk,
        rows["pending_old"].pk,
    }


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_the_task_and_the_sweep_never_both_apply_one_event(monkeypatch, patient):
    """While the task holds an event (its row locked, applying it), the sweep skips it; once
    applied, nothing applies it again."""
    message = outbound(patient, channel="email", provider_id="abc")
    [event_id] = webhook_events_store(
        kind=WebhookKind.SENDGRID,
        incoming=[
            webhook_intake.Incoming(
                key="sendgrid:ev1",
                payload={"event": "unsubscribe", "sg_event_id": "ev1", "outbox_id": message.pk},
            )
        ],
        now=timezone.now() - dt.timedelta(minutes=5),
        enqueue=False,
    )
    real = webhook_events.sendgrid_event_apply
    entered, release = threading.Event(), threading.Event()
    calls = []

    def held(**kwargs):
        calls.append(kwargs["event"]["sg_event_id"])
        entered.set()
        assert release.wait(timeout=30)
        return real(**kwargs)

    monkeypatch.setattr(webhook_events, "sendgrid_event_apply", held)
    results = []

    def task():
        try:
            results.append(webhook_event_process(event_id=event_id, now=timezone.now()))
        finally:
            connection.close()

    worker = threading.Thread(target=task)
    worker.start()
    try:
        assert entered.wait(timeout=30)
        assert webhook_events_process_pending(now=later()) == 0  # locked: skipped
    finally:
        release.set()
        worker.join(timeout=30)
    assert results == [True]
    assert webhook_events_process_pending(now=later()) == 0  # applied: never again
    assert calls == ["ev1"]
    patient.refresh_from_db()
    assert patient.email_opt_out


# --- SendGrid: one bad event, events that move no status, replays ----------------------------


def test_one_malformed_event_never_loses_the_others(sendgrid_key, patient):
    message = outbound(patient, channel="email", provider_id="abc")
    events = [
        sg_event(message, "delivered", "ev\x00bad"),
        "not an event",
        sg_event(message, "unsubscribe", "ev2"),
    ]

    response = sendgrid_post(sendgrid_key, events)

    assert response.status_code == 204
    patient.refresh_from_db()
    assert (patient.email_opt_out, patient.email_opt_out_source) == (True, "unsubscribe")
    kept = {row.error: row for row in WebhookEvent.objects.filter(failed_at__isnull=False)}
    assert set(kept) == {"NUL character in sg_event_id", "not an event object"}
    assert json.loads(kept["NUL character in sg_event_id"].payload)["sg_event_id"] == "ev\x00bad"
    assert WebhookEvent.objects.get(event_key="sendgrid:ev2").processed_at is not None


def test_an_event_that_keeps_failing_is_given_up_and_the_others_applied(
    sendgrid_key, patient, monkeypatch
):
    message = outbound(patient, channel="email", provider_id="abc")
    real = webhook_events.sendgrid_event_apply

    def failing_on_ev1(*, event, now):
        if event["sg_event_id"] == "ev1":
            raise ValueError("cannot apply")
        return real(event=event, now=now)

    monkeypatch.setattr(webhook_events, "sendgrid_event_apply", failing_on_ev1)

    sendgrid_post(
        sendgrid_key, [sg_event(message, "delivered", "ev1"), sg_event(message, "open", "ev2")]
    )

    message.refresh_from_db()
    assert message.status == "opened"
    bad = WebhookEvent.objects.get(event_key="sendgrid:ev1")
    assert (bad.attempts, bad.failed_at) == (1, None)
    for _ in range(webhook_events.MAX_ATTEMPTS):
        webhook_events_process_pending(now=later())
    bad.refresh_from_db()
    assert bad.attempts == webhook_events.MAX_ATTEMPTS
    assert bad.failed_at is not None
    assert bad.error == "ValueError"
    assert json.loads(bad.payload)["sg_event_id"] == "ev1"  # kept for the operator


def test_a_redelivered_unsubscribe_after_opting_back_in_changes_nothing(sendgrid_key, patient):
    message = outbound(patient, channel="email", provider_id="abc")
    batch = [sg_event(message, "unsubscribe", "ev1")]
    sendgrid_post(sendgrid_key, batch)
    patient.refresh_from_db()
    assert patient.email_opt_out
    patient_opt_out_set(
        practice=patient.practice,
        patient=patient,
        channel="email",
        opted_out=False,
        source=OptOutSource.STAFF,
        actor="front desk",
    )

    assert sendgrid_post(sendgrid_key, batch).status_code == 204

    patient.refresh_from_db()
    assert not patient.email_opt_out


def test_a_bounce_after_opened_is_stored_and_blocks_the_address(sendgrid_key, patient):
    message = outbound(patient, channel="email", provider_id="abc")
    sendgrid_post(sendgrid_key, [sg_event(message, "open", "ev1")])

    bounce = [sg_event(message, "bounce", "ev2", type="blocked")]
    sendgrid_post(sendgrid_key, bounce)
    sendgrid_post(sendgrid_key, bounce)  # redelivered: counts once

    message.refresh_from_db()
    assert message.status == "opened"  # a status never moves back
    assert statuses(message) == ["opened", "bounced"]
    bounced = MessageEvent.objects.get(status="bounced")
    assert (bounced.provider_event_id, bounced.reason) == ("sendgrid:ev2", "blocked")
    assert message.report_pending
    patient.refresh_from_db()
    assert (patient.email_opt_out, patient.email_opt_out_source) == (True, "provider")


def test_a_signed_batch_signed_too_long_ago_is_refused(sendgrid_key, patient, settings):
    settings.SENDGRID_WEBHOOK_MAX_AGE_SECONDS = 600
    message = outbound(patient, channel="email", provider_id="abc")
    now = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)

    def post(signed_at: dt.datetime, event_id: str):
        event = sg_event(message, "delivered", event_id)
        return sendgrid_post(sendgrid_key, [event], timestamp=str(int(signed_at.timestamp())))

    with time_machine.travel(now, tick=False):
        stale = post(now - dt.timedelta(seconds=601), "ev1")
        ahead = post(now + dt.timedelta(seconds=601), "ev2")
        assert [stale.status_code, ahead.status_code] == [403, 403]
        assert not WebhookEvent.objects.exists()
        assert post(now - dt.timedelta(seconds=600), "ev3").status_code == 204

    message.refresh_from_db()
    assert message.status == "delivered"
    assert MessageEvent.objects.get().provider_event_id == "sendgrid:ev3"


def test_the_operator_sees_failed_events_and_sends_them_back(sendgrid_key, patient):
    message = outbound(patient, channel="email", provider_id="abc")
    sendgrid_post(sendgrid_key, [sg_event(message, "delivered", "ev\x00bad")])
    WebhookEvent.objects.filter(pk=WebhookEvent.objects.get().pk).update(
        payload=json.dumps({"event": "delivered", "sg_event_id": "ev1", "outbox_id": message.pk})
    )
    [failed] = WebhookEvent.objects.filter(failed_at__isnull=False)
    operator = Client()
    operator.force_login(UserFactory(is_staff=True, is_superuser=True))
    changelist = reverse("admin:messaging_webhookevent_changelist")

    page = operator.get(changelist, {"state": "failed"}).content.decode()
    assert "NUL character in sg_event_id" in page
    assert patient.email not in page
    operator.post(changelist, {"action": "retry", "_selected_action": [failed.pk]})

    failed.refresh_from_db()
    assert (failed.failed_at, failed.attempts, failed.error) == (None, 0, "")
    assert webhook_events_process_pending(now=later()) == 1
    message.refresh_from_db()
    assert message.status == "delivered"
