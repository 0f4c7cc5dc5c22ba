"""The events feed never skips an event that commits late (DESIGN §4.1.1: connectors poll
``GET /api/v1/events?after=``). Ids come from a sequence when the row is written, not when
its transaction commits: a sync still running holds a lower id than an event written and
committed after it. A feed in id order would hand out the later one, and the poller's
cursor would then step over the first for ever. PostgreSQL, with two real transactions."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from tests.factories import PracticeFactory
from trackstat.events import event_emit, events_page
from trackstat.models import EventType

needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="two concurrent transactions on one database: PostgreSQL",
)
pytestmark = [needs_postgres, pytest.mark.django_db(transaction=True)]


def ids(page: dict) -> list[int]:
    return [event["id"] for event in page["results"]]


def test_an_event_committed_late_is_still_handed_out_after_the_ones_before_it():
    practice = PracticeFactory()
    first_written = threading.Event()
    may_commit = threading.Event()
    late: dict = {}

    def slow_sync():
        try:
            with transaction.atomic():
                late["id"] = event_emit(
                    practice=practice,
                    type=EventType.PATIENT_OPTED_OUT,
                    data={"patient_external_id": "P1", "channel": "sms", "source": "emr"},
                ).pk
                first_written.set()
                may_commit.wait(timeout=30)
        finally:
            connection.close()

    thread = threading.Thread(target=slow_sync)
    thread.start()
    assert first_written.wait(timeout=30)
    quick = event_emit(
        practice=practice,
        type=EventType.PATIENT_OPTED_IN,
        data={"patient_external_id": "P2", "channel": "sms", "source": "api"},
    ).pk
    assert quick > late["id"]  # written after it, committed before it

    # While the slow transaction runs, the quick event is not handed out yet: a cursor past
    # it would step over the slow one.
    early = events_page(practice=practice, after=None)
    assert late["id"] not in ids(early)
    assert quick not in ids(early)

    may_commit.set()
    thread.join(timeout=30)
    later = events_page(practice=practice, after=early["next_cursor"])
    assert ids(later) == [late["id"], quick]
    assert events_page(practice=practice, after=later["next_cursor"])["results"] == []
