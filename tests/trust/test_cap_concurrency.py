"""Practice-wide caps under real concurrency (DESIGN §5.8): two send batches for one patient,
each in its own thread on its own PostgreSQL connection, released together by a barrier.

Why the re-check locks the patient (``messaging.outbox.trust._patients_lock``): the cap counts
the messages "ahead" of this one that are still going out, so a re-check must see what a
concurrent re-check of the same patient decided. A higher-priority text stopped by its own
re-check (here the Florida cap of 3 marketing texts) leaves room under the practice's cap for
the patient's email; without the lock the email's re-check reads the text as still going out
and skips the email too, and the patient gets neither.

SQLite serializes writers, so these run on PostgreSQL only, like the engine's exactly-once
tests."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from django.db import connection

from campaigns.engine.enroll import campaigns_run_due
from campaigns.engine.steps import steps_materialize
from messaging.models import OutboundMessage
from messaging.outbox import send, trust
from messaging.outbox.dispatch import messages_dispatch
from messaging.outbox.send import messages_send
from tests.campaigns.builders import Clinic, ny
from tests.campaigns.test_engine import drip, email, sms
from tests.campaigns.test_engine_exactly_once import needs_postgres, run_in_parallel

BIRTHDAY = {"type": "birthday"}
ROUNDS = 8


def claimed_pair(*, low: dict, high: dict, patient: dict, at: dt.datetime):
    clinic = Clinic()
    drip(clinic, BIRTHDAY, name="Low", enabled_at=ny(2026, 6, 1), **low)
    drip(clinic, BIRTHDAY, name="High", priority=3, enabled_at=ny(2026, 6, 1), **high)
    ann = clinic.patient(birth_date=dt.date(1990, 6, 15), phone="3125550123", **patient)
    campaigns_run_due(now=at)
    steps_materialize(now=at)
    # The cap is set after the messages were made: only the re-check before sending judges.
    clinic.practice.messaging_policy = {"marketing_per_24h": 1}
    clinic.practice.save()
    claimed = messages_dispatch(now=at)
    messages = OutboundMessage.objects.filter(patient=ann)
    low_id = messages.get(campaign__name="Low").pk
    high_id = messages.get(campaign__name="High").pk
    assert set(claimed) == {low_id, high_id}
    return low_id, high_id


def outcome(*ids: int) -> list[tuple[str, str]]:
    rows = dict(OutboundMessage.objects.filter(pk__in=ids).values_list("pk", "status"))
    reasons = dict(OutboundMessage.objects.filter(pk__in=ids).values_list("pk", "status_reason"))
    return [(rows[pk], reasons[pk]) for pk in ids]


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_two_batches_at_once_send_one_message_under_the_cap():
    """Two marketing texts claimed together, each sent by its own batch at the same instant,
    with room for one: the higher priority one goes and the other is skipped, every round."""
    at = ny(2026, 6, 15, 10, 0)
    for _ in range(ROUNDS):
        low, high = claimed_pair(low={}, high={}, patient={}, at=at)
        run_in_parallel(
            lambda low=low: messages_send(message_ids=[low], now=at),
            lambda high=high: messages_send(message_ids=[high], now=at),
        )
        assert outcome(low, high) == [("skipped", "frequency_cap"), ("delivered", "")]
    assert connection.vendor == "postgresql"


def florida_text_and_email(at: dt.datetime) -> tuple[int, int]:
    """A Florida patient with 3 marketing texts sent in the last 24 hours, a high-priority
    marketing text (over Florida's 3 a day) and a marketing email (under the practice's 4 a
    day unless the text goes), both claimed."""
    clinic = Clinic()
    drip(
        clinic,
        BIRTHDAY,
        name="Low",
        enabled_at=ny(2026, 6, 1),
        messages=[email("A gift", "<p>For you</p>")],
    )
    drip(
        clinic,
        BIRTHDAY,
        name="High",
        priority=3,
        enabled_at=ny(2026, 6, 1),
        messages=[sms("high")],
    )
    ann = clinic.patient(
        birth_date=dt.date(1990, 6, 15),
        phone="3125550123",
        email="ann@example.test",
        address={"state": "FL"},
    )
    campaigns_run_due(now=at)
    steps_materialize(now=at)
    # Then the texts sent meanwhile and the practice's cap: only the re-check sees them.
    for hours in (1, 2, 3):
        OutboundMessage.objects.create(
            practice=clinic.practice,
            patient=ann,
            channel="sms",
            to=ann.phone,
            purpose="marketing",
            status="sent",
            scheduled_for=at - dt.timedelta(hours=hours),
            sent_at=at - dt.timedelta(hours=hours),
        )
    clinic.practice.messaging_policy = {"marketing_per_24h": 4}
    clinic.practice.save()
    messages = OutboundMessage.objects.filter(patient=ann, campaign__isnull=False)
    text = messages.get(campaign__name="High").pk
    mail = messages.get(campaign__name="Low").pk
    assert set(messages_dispatch(now=at)) == {text, mail}
    return text, mail


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_a_re_check_waits_for_the_one_of_the_same_patient_and_sees_its_decision(monkeypatch):
    """The text's batch re-checks first and is still in its transaction when the email's
    batch re-checks: the email's waits for the patient's lock, then sees the text skipped,
    and goes. Exactly one message is sent, every round."""
    at = ny(2026, 6, 15, 10, 0)
    text_locked = threading.Event()
    real_lock = trust._patients_lock

    def lock_then_linger(patient_ids):
        real_lock(patient_ids)
        if not text_locked.is_set():  # the text's batch: the first to get here
            text_locked.set()
            time.sleep(0.5)  # the email's batch re-checks meanwhile

    monkeypatch.setattr(trust, "_patients_lock", lock_then_linger)

    def send_email_once_the_text_is_locked(mail):
        assert text_locked.wait(timeout=30)
        return messages_send(message_ids=[mail], now=at)

    for _ in range(4):
        text, mail = florida_text_and_email(at)
        text_locked.clear()
        run_in_parallel(
            lambda text=text: messages_send(message_ids=[text], now=at),
            lambda mail=mail: send_email_once_the_text_is_locked(mail),
        )
        assert outcome(text, mail) == [("skipped", "frequency_cap"), ("delivered", "")]


@pytest.mark.django_db(transaction=True)
def test_a_message_that_passed_its_re_check_counts_before_its_provider_call(monkeypatch):
    """A lower-priority text passes its re-check at 10:00, when the higher-priority one is
    not due yet (at 10:01); before its batch reaches the provider, the other batch re-checks the
    higher-priority text, due at 10:20. The first is going out: it counts, and the second is
    skipped with ``frequency_cap`` (room for one), rather than both going out because the
    first was judged "behind" it by priority while it had not been handed to the provider
    yet. The same holds whatever the gap between a batch's re-check and each provider call
    (a batch of many messages, a slow provider)."""
    at = ny(2026, 6, 15, 10, 0)
    later = at + dt.timedelta(minutes=1)
    clinic = Clinic()
    drip(clinic, BIRTHDAY, name="Low", enabled_at=ny(2026, 6, 1))
    drip(clinic, BIRTHDAY, name="High", priority=3, enabled_at=ny(2026, 6, 1))
    ann = clinic.patient(birth_date=dt.date(1990, 6, 15), phone="3125550123")
    campaigns_run_due(now=at)
    steps_materialize(now=at)
    messages = OutboundMessage.objects.filter(patient=ann)
    low = messages.get(campaign__name="Low").pk
    high = messages.get(campaign__name="High").pk
    OutboundMessage.objects.filter(pk=high).update(scheduled_for=later)
    clinic.practice.messaging_policy = {"marketing_per_24h": 1}
    clinic.practice.save()
    assert messages_dispatch(now=at) == [low]

    real_deliver = send.messages_deliver
    interleaved = []

    def the_other_batch_first(outgoing, now):
        if not interleaved:
            interleaved.append(True)
            assert messages_dispatch(now=later) == [high]
            messages_send(message_ids=[high], now=later)
        return real_deliver(outgoing, now)

    monkeypatch.setattr(send, "messages_deliver", the_other_batch_first)
    messages_send(message_ids=[low], now=at)
    assert interleaved
    assert outcome(low, high) == [("delivered", ""), ("skipped", "frequency_cap")]
