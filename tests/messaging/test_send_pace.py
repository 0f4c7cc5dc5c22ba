"""The per-practice send allowance (``SEND_RATE_PER_PRACTICE_PER_MINUTE``): at most that many
messages of one practice are handed over for sending in one wall-clock minute, however many
ticks run in it, at once or one after another; what is not taken waits for the next minute,
and each practice has its own allowance, so one practice's blast never delays another's
reminder."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns.engine import tick
from campaigns.engine.enroll import campaigns_run_due
from campaigns.engine.steps import steps_materialize
from campaigns.language.spec import CampaignSerializer
from campaigns.services import campaign_create
from messaging.models import MessageStatus, OutboundMessage, SandboxMessage
from messaging.outbox.dispatch import messages_dispatch
from tests.campaigns.builders import Clinic, ny
from tests.campaigns.test_engine import received, reminder, sms
from tests.campaigns.test_engine_exactly_once import needs_postgres, run_in_parallel
from trackstat.models import Practice

RATE = 10
BLAST_SIZE = 25
AT = ny(2026, 6, 15, 10, 0)
SECOND = dt.timedelta(seconds=1)
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture(autouse=True)
def _rate(settings):
    settings.SEND_RATE_PER_PRACTICE_PER_MINUTE = RATE


def blast(clinic: Clinic, size: int = BLAST_SIZE) -> None:
    """A blast to ``size`` patients, each with their own mobile number."""
    for n in range(size):
        clinic.patient(phone=f"+1312555{1000 + n:04d}")
    serializer = CampaignSerializer(
        data={"name": "Big blast", "kind": "blast", "enabled": True, "messages": [sms("News!")]}
    )
    assert serializer.is_valid(), serializer.errors
    with time_machine.travel(ny(2026, 6, 14), tick=False):
        campaign_create(practice=clinic.practice, data=serializer.validated_data, actor=None)


def handed_over(practice: Practice) -> int:
    """Messages of ``practice`` that reached the provider (the sandbox records each once)."""
    return SandboxMessage.objects.filter(practice=practice).count()


def queued_at(at: dt.datetime) -> tuple[Clinic, Clinic]:
    """A practice with a big blast and another with one reminder, all materialized and due
    at ``at`` (so that the ticks under test only dispatch and send)."""
    busy, quiet = Clinic(), Clinic()
    blast(busy)
    reminder(quiet)
    ann = quiet.patient(phone="3125550101")
    quiet.appointment(ann, ny(2026, 6, 16, 9, 30))
    campaigns_run_due(now=at)
    steps_materialize(now=at)
    assert OutboundMessage.objects.filter(status=MessageStatus.QUEUED).count() == BLAST_SIZE + 1
    return busy, quiet


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_ticks_at_once_share_one_allowance_per_minute():
    busy, quiet = queued_at(AT)

    # Four ticks in the same minute, side by side (beat's, a slow one, manage.py tick…).
    summaries = run_in_parallel(
        *(partial(tick, now=AT + n * 10 * SECOND, send="inline") for n in range(4))
    )

    assert handed_over(busy.practice) == RATE
    assert handed_over(quiet.practice) == 1  # its reminder did not wait for the blast
    assert sum(s["messages_dispatched"] for s in summaries) == RATE + 1
    waiting = OutboundMessage.objects.filter(practice=busy.practice, status=MessageStatus.QUEUED)
    assert waiting.count() == BLAST_SIZE - RATE  # not lost: queued for the next minute

    # Later in the same minute: nothing more for the busy practice.
    run_in_parallel(*(partial(tick, now=AT + 59 * SECOND, send="inline") for _ in range(2)))
    assert handed_over(busy.practice) == RATE

    # Each next minute hands over another allowance, until the blast is out.
    run_in_parallel(*(partial(tick, now=AT + MINUTE + n * SECOND, send="inline") for n in range(3)))
    assert handed_over(busy.practice) == 2 * RATE
    tick(now=AT + 2 * MINUTE, send="inline")
    assert handed_over(busy.practice) == BLAST_SIZE
    assert not waiting.exists()


@pytest.mark.django_db
def test_successive_ticks_in_one_minute_share_the_allowance():
    busy, quiet = queued_at(AT)

    first = tick(now=AT, send="inline")
    again = tick(now=AT + 30 * SECOND, send="inline")

    assert (first["messages_dispatched"], again["messages_dispatched"]) == (RATE + 1, 0)
    assert handed_over(busy.practice) == RATE
    assert len(received(quiet.practice.patients.get())) == 1
    tick(now=AT + MINUTE, send="inline")  # the next minute has its own allowance
    assert handed_over(busy.practice) == 2 * RATE


@pytest.mark.django_db
def test_a_tick_with_a_late_clock_counts_against_the_newest_minute():
    busy, _ = queued_at(AT)
    tick(now=AT + MINUTE, send="inline")
    assert handed_over(busy.practice) == RATE

    # A worker whose clock (or whose ``--now``) is behind runs its tick afterwards.
    stale = tick(now=AT + 30 * SECOND, send="inline")

    assert stale["messages_dispatched"] == 0
    assert handed_over(busy.practice) == RATE


@pytest.mark.parametrize(
    ("variables", "rate"),
    [
        ({}, "600"),
        ({"SEND_RATE_PER_PRACTICE_PER_TICK": "42"}, "42"),  # the old name, still read
        ({"SEND_RATE_PER_PRACTICE_PER_TICK": "42", "SEND_RATE_PER_PRACTICE_PER_MINUTE": "7"}, "7"),
    ],
)
def test_the_allowance_setting_and_its_old_name(variables, rate):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEND_RATE_PER_PRACTICE")}
    env.update(variables, DEBUG="1")
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from trackstat import settings as s;print(s.SEND_RATE_PER_PRACTICE_PER_MINUTE)",
        ],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == rate, result.stderr


def reminders_due(clinics: int) -> list[Clinic]:
    """``clinics`` practices, each with one reminder queued and due at AT."""
    made = []
    for _ in range(clinics):
        clinic = Clinic()
        reminder(clinic)
        clinic.appointment(clinic.patient(phone="3125550101"), ny(2026, 6, 16, 9, 30))
        made.append(clinic)
    campaigns_run_due(now=AT)
    steps_materialize(now=AT)
    return made


def claim_statements(now: dt.datetime) -> tuple[int, list[int]]:
    with CaptureQueriesContext(connection) as captured:
        claimed = messages_dispatch(now=now)
    return len(captured.captured_queries), claimed


@needs_postgres
@pytest.mark.django_db
def test_claiming_many_practices_costs_the_statements_of_one():
    # One statement takes every practice's due messages, within each one's allowance: a
    # tick of hundreds of practices does not pay a transaction per practice.
    reminders_due(1)
    alone, claimed = claim_statements(AT)
    assert len(claimed) == 1

    several = reminders_due(5)
    together, claimed = claim_statements(AT + MINUTE)

    assert len(claimed) == 5
    assert {m.practice_id for m in OutboundMessage.objects.filter(pk__in=claimed)} == {
        clinic.practice.pk for clinic in several
    }
    assert together == alone
