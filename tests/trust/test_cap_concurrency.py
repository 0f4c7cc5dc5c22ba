"""Practice-wide caps under real concurrency (DESIGN §5.8): two send batches for one patient,
each in its own thread on its own PostgreSQL connection, released together by a barrier.

SQLite serializes writers, so these run on PostgreSQL only, like the engine's exactly-once
tests."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection

from campaigns.engine.enroll import campaigns_run_due
from campaigns.engine.steps import steps_materialize
from messaging.models import OutboundMessage
from messaging.outbox.dispatch import messages_dispatch
from messaging.outbox.send import messages_send
from tests.campaigns.builders import Clinic, ny
from tests.campaigns.test_engine import drip
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
