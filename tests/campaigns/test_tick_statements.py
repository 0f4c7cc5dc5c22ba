"""The statements of a tick that has nothing to do, pinned per phase (the engine benchmark's
idle tick and re-tick at a busy minute): each tick of every minute pays them, so a feature
that adds a read for practices that do not use it shows here first.

Exact counts, not "at most": a new statement must be a decision, made here, not a drift. The
scenario has what the benchmark has (scheduled and continuous campaigns, a goal, patients
whose messages went out) and no practice-wide caps, no holdout or variants, no ``confirmed``
goal: the trust rules and experiments must cost nothing when unused.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns.engine import tick
from campaigns.engine.enroll import campaigns_run_due
from campaigns.engine.goals import goals_apply
from campaigns.engine.steps import steps_materialize
from messaging.models import MessageStatus, OutboundMessage
from messaging.outbox.dispatch import messages_dispatch
from tests.campaigns.builders import Clinic, ny
from tests.campaigns.test_engine import drip, sms

pytestmark = pytest.mark.django_db

PHASES = {
    "enroll": campaigns_run_due,
    "goals": goals_apply,
    "materialize": steps_materialize,
    "dispatch": messages_dispatch,
}
SAVEPOINTS = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")
BUSY_AT = ny(2026, 6, 15, 10, 5)  # the scheduled run, and a missed appointment at 9:30
IDLE_AT = ny(2026, 6, 16, 7, 0)  # the next morning: nothing due yet

# What a tick with nothing new runs, per phase. enroll: the enabled campaigns and the day's
# runs; on PostgreSQL the continuous campaigns' watermark (docs/engine-watermark.md): the
# change log, their evaluations, one statement for the patients a moment crossed for or who
# changed (re-tick) or the "anything started today?" read of a new day (idle), then the
# watermark moved or recorded, however many continuous campaigns there are; on SQLite (no
# change log) their audience inserts that conflict; goals: the campaigns with a goal, then
# one read per distinct goal; materialize: the due enrollments; dispatch: nothing to
# expire, to recover (two reads) or to claim.
RETICK = {
    "postgresql": {"enroll": 6, "goals": 2, "materialize": 1, "dispatch": 4},
    "sqlite": {"enroll": 6, "goals": 2, "materialize": 1, "dispatch": 4},
}
IDLE = {
    "postgresql": {"enroll": 5, "goals": 2, "materialize": 1, "dispatch": 4},
    "sqlite": {"enroll": 2, "goals": 2, "materialize": 1, "dispatch": 4},
}


def phase_statements(now: dt.datetime) -> dict[str, list[str]]:
    found = {}
    for name, phase in PHASES.items():
        with CaptureQueriesContext(connection) as captured:
            phase(now=now)
        found[name] = [
            q["sql"] for q in captured.captured_queries if not q["sql"].startswith(SAVEPOINTS)
        ]
    return found


def counts(found: dict[str, list[str]]) -> dict[str, int]:
    return {name: len(statements) for name, statements in found.items()}


@pytest.fixture
def busy_minute():
    """A practice with a scheduled and a continuous campaign (one with a goal) whose
    messages of the busy minute have gone out."""
    clinic = Clinic()
    drip(clinic, {"type": "birthday"}, name="Birthday", enabled_at=ny(2026, 6, 1))
    drip(
        clinic,
        {"type": "missed_appointment", "minutes_after": 30},
        name="Missed",
        enabled_at=ny(2026, 6, 1),
        goal={"type": "future_appointment"},
        messages=[sms("We missed you"), sms("Still there?", value=2, unit="days")],
    )
    ann = clinic.patient(birth_date=dt.date(1990, 6, 15), phone="3125550123")
    bob = clinic.patient(phone="3125550124")
    clinic.appointment(bob, ny(2026, 6, 15, 9, 30))
    summary = tick(now=BUSY_AT, send="queue")
    assert summary["enrollments_created"] == 2
    OutboundMessage.objects.filter(patient__in=[ann, bob]).update(
        status=MessageStatus.SENT, sent_at=BUSY_AT
    )
    return clinic


def test_a_re_tick_with_nothing_new_runs_the_pinned_statements(busy_minute):
    found = phase_statements(BUSY_AT)
    assert counts(found) == RETICK[connection.vendor], found


def test_an_idle_tick_runs_the_pinned_statements(busy_minute):
    found = phase_statements(IDLE_AT)
    assert counts(found) == IDLE[connection.vendor], found
