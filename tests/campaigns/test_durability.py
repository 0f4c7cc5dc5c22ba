"""A tick's own writes commit without waiting for the WAL flush (PostgreSQL), and only they:
the claim of messages to send, and any transaction a caller opened around a tick, keep
PostgreSQL's synchronous commit (campaigns/engine/durability.py says why that is safe)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from campaigns.engine.durability import commit_async
from campaigns.engine.enroll import campaigns_run_due
from campaigns.engine.steps import steps_materialize
from messaging.outbox.dispatch import messages_dispatch
from tests.campaigns.builders import Clinic, ny
from tests.campaigns.test_engine import drip

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="synchronous_commit is PostgreSQL's"
    ),
]
ASYNC = "SET LOCAL synchronous_commit = off"
AT = ny(2026, 6, 15, 10, 5)


def synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


def test_a_transaction_of_its_own_commits_asynchronously_and_the_next_one_does_not():
    with transaction.atomic():
        commit_async()
        assert synchronous_commit() == "off"
    assert synchronous_commit() == "on"


def test_a_transaction_the_caller_opened_keeps_its_synchronous_commit():
    with transaction.atomic(), transaction.atomic():
        commit_async()
        assert synchronous_commit() == "on"


def test_runs_and_materialized_batches_commit_asynchronously_and_the_claim_does_not():
    clinic = Clinic()
    drip(clinic, {"type": "birthday"}, name="Birthday", enabled_at=ny(2026, 6, 1))
    drip(clinic, {"type": "birthday"}, name="Also birthday", enabled_at=ny(2026, 6, 1))
    clinic.patient(birth_date=dt.date(1990, 6, 15), phone="3125550123")

    # A scheduled run sets it in its first statement (set_config), not a SET of its own.
    in_statement = []

    def seen(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if "set_config('synchronous_commit'" in sql:
            in_statement.append(synchronous_commit())  # another cursor: keep this one's rows
        return result

    with CaptureQueriesContext(connection) as enrolled, connection.execute_wrapper(seen):
        assert campaigns_run_due(now=AT) == (2, 2)
    assert in_statement == ["off", "off"]  # one per campaign run
    assert synchronous_commit() == "on"
    with CaptureQueriesContext(connection) as materialized:
        assert steps_materialize(now=AT) == (2, 0)
    with CaptureQueriesContext(connection) as claimed:
        assert len(messages_dispatch(now=AT)) == 2

    def sets(captured) -> int:
        return sum(q["sql"] == ASYNC for q in captured.captured_queries)

    assert sets(enrolled) == 0
    assert sets(materialized) == 1  # one per batch
    assert sets(claimed) == 0


def test_a_scheduled_run_in_a_transaction_the_caller_opened_keeps_its_synchronous_commit():
    clinic = Clinic()
    drip(clinic, {"type": "birthday"}, name="Birthday", enabled_at=ny(2026, 6, 1))
    clinic.patient(birth_date=dt.date(1990, 6, 15), phone="3125550123")
    with transaction.atomic():
        assert campaigns_run_due(now=AT) == (1, 1)
        assert synchronous_commit() == "on"
