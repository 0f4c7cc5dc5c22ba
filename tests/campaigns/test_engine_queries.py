"""A tick costs a fixed number of queries, however many patients it handles (DESIGN §6).

Each test runs the same scenario for a practice of 5 and of 60 matching patients, measures the
tick's queries for 5 (``CaptureQueriesContext``) and allows no more for 60. Sends are handed to
the queue (``send="queue"``); the task's ``delay`` is replaced by a list, so nothing is
published and each measured tick shows how many messages it dispatched.
"""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns.engine import tick
from campaigns.language.spec import CampaignSerializer
from campaigns.models import Campaign
from campaigns.services import campaign_create
from messaging.outbox.send import message_send
from messaging.tasks import send_messages_task
from tests.campaigns.builders import Clinic, ny

pytestmark = pytest.mark.django_db

SMALL, LARGE = 5, 60
BIRTH_DATE = dt.date(1980, 5, 12)
ENABLED_AT = ny(2026, 5, 12, 8, 0)
BEFORE_RUN = ny(2026, 5, 12, 9, 0)
RUN_AT = ny(2026, 5, 12, 10, 5)  # the birthday campaign's run: enroll and send step 1
IDLE_AT = ny(2026, 5, 12, 10, 30)  # everything of today done, step 2 due tomorrow
STEP_2_AT = ny(2026, 5, 13, 10, 5)
# An idle tick reads the enabled campaigns and their steps, finds today's run already
# recorded (one insert that conflicts), the campaigns with goals, no due enrollment, nothing
# to expire or recover (two reads), no due message, and moves the heartbeat (read, update):
# 11 statements, besides the savepoints that exist only because the test runs inside a
# transaction.
IDLE_QUERIES_AT_MOST = 12
SAVEPOINTS = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")

BIRTHDAY = {
    "name": "Happy birthday",
    "enabled": True,
    "trigger": {"type": "birthday", "offset_days": 0},
    "schedule": {"frequency": "daily", "time": "10:00"},
    "messages": [
        {"channel": "sms", "body": "Happy birthday, {{PatientFirstName}}!"},
        {
            "channel": "email",
            "subject": "A birthday gift",
            "body": "<p>Hi {{PatientFirstName}}, a birthday adjustment is on us.</p>",
            "delay": {"value": 1, "unit": "days"},
        },
    ],
}


@pytest.fixture
def queued(monkeypatch) -> list[int]:
    """The message ids a tick hands to the send queue (nothing is published)."""
    ids: list[int] = []
    monkeypatch.setattr(send_messages_task, "delay", ids.extend)
    return ids


def birthday_practice(patients: int) -> Campaign:
    """A practice with ``patients`` patients born on 12 May and an enabled two-step birthday
    campaign; a first tick before the run has recorded the heartbeat."""
    clinic = Clinic()
    for number in range(patients):
        clinic.patient(
            birth_date=BIRTH_DATE,
            phone=f"+1312555{number:04d}",
            email=f"patient{number}@example.test",
        )
    serializer = CampaignSerializer(data=BIRTHDAY)
    assert serializer.is_valid(), serializer.errors
    with time_machine.travel(ENABLED_AT, tick=False):
        campaign = campaign_create(
            practice=clinic.practice, data=serializer.validated_data, actor=None
        )
    tick(now=BEFORE_RUN)
    return campaign


def run_and_send(queued: list[int]) -> None:
    """The enrolling tick, and the workers sending what it queued."""
    summary = tick(now=RUN_AT)
    for message_id in queued:
        message_send(message_id=message_id, now=RUN_AT)
    assert summary["messages_dispatched"] == len(queued) > 0
    queued.clear()


STAGES = {
    # stage: (what happens before the measured tick, its instant, what it must do)
    "enrolling": (lambda queued: None, RUN_AT, "enrollments_created"),
    "step 2": (run_and_send, STEP_2_AT, "messages_created"),
    "idle": (run_and_send, IDLE_AT, None),
}


def assert_did(work: str | None, summary: dict, queued: list[int], patients: int) -> None:
    """The measured tick did its stage's work for every patient (or, idle, nothing)."""
    if work:
        assert summary[work] == summary["messages_dispatched"] == len(queued) == patients
    else:
        assert summary["messages_created"] == summary["messages_dispatched"] == len(queued) == 0


@pytest.mark.parametrize("stage", STAGES)
def test_tick_queries_do_not_grow_with_the_patients(stage, queued, django_assert_max_num_queries):
    before, now, work = STAGES[stage]

    small = birthday_practice(SMALL)
    before(queued)
    with CaptureQueriesContext(connection) as measured:
        summary = tick(now=now)
    assert_did(work, summary, queued, SMALL)
    # Retire the small practice's campaign, so the large run ticks one campaign too.
    Campaign.objects.filter(pk=small.pk).update(enabled=False)
    queued.clear()

    birthday_practice(LARGE)
    before(queued)
    with django_assert_max_num_queries(len(measured)) as large:
        summary = tick(now=now)
    assert_did(work, summary, queued, LARGE)
    assert len(large) == len(measured), f"{SMALL} patients: {len(measured)}, {LARGE}: {len(large)}"


def test_an_idle_tick_is_a_handful_of_queries(queued):
    birthday_practice(SMALL)
    run_and_send(queued)

    with CaptureQueriesContext(connection) as idle:
        summary = tick(now=IDLE_AT)

    assert summary["messages_dispatched"] == 0
    queries = [q["sql"] for q in idle.captured_queries if not q["sql"].startswith(SAVEPOINTS)]
    assert len(queries) <= IDLE_QUERIES_AT_MOST, (
        f"an idle tick ran {len(queries)} queries (at most {IDLE_QUERIES_AT_MOST}):\n"
        + "\n".join(queries)
    )
