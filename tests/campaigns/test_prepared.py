"""Narrowed continuous runs go through prepared statements (campaigns/engine/prepared.py):
the same enrollments as plain statements, prepared once per connection and shape, and
nothing lost when a statement cannot be prepared or the connection is new. The narrowed runs
of one shape are one statement (campaigns.engine.enroll:_shape_enroll), each run counted."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from campaigns.engine import prepared
from campaigns.engine.enroll import campaigns_run_due
from campaigns.models import Enrollment
from tests.campaigns.builders import Clinic, ny
from tests.campaigns.test_engine import drip, sms

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PREPARE is PostgreSQL's"),
]
MISSED = {"type": "missed_appointment", "minutes_after": 15}


def test_placeholders_are_numbered_and_other_percent_signs_refused():
    assert prepared.placeholders_numbered("SELECT %s, %s FROM t WHERE a = %s") == (
        "SELECT $1, $2 FROM t WHERE a = $3"
    )
    assert prepared.placeholders_numbered("SELECT 1") == "SELECT 1"
    assert prepared.placeholders_numbered("SELECT %s WHERE b LIKE 'x%%'") is None


def two_practices_missing_appointments():
    """Two practices with a missed-appointment campaign of the same shape, evaluated in full
    at 9:15; at 9:31 each has a new missed appointment (a narrowed run each)."""
    clinics = [Clinic(), Clinic()]
    campaigns = [
        drip(clinic, MISSED, enabled_at=ny(2026, 6, 1), messages=[sms("Missed you")])
        for clinic in clinics
    ]
    for n, clinic in enumerate(clinics):
        early = clinic.patient(f"EARLY{n}", phone=f"312555010{n}")
        clinic.appointment(early, ny(2026, 6, 15, 9, 0))
        late = clinic.patient(f"LATE{n}", phone=f"312555020{n}")
        clinic.appointment(late, ny(2026, 6, 15, 9, 15))
    return campaigns


def entered() -> list[tuple[int, str]]:
    return sorted(Enrollment.objects.values_list("campaign_id", "patient__external_id").order_by())


@pytest.mark.parametrize("on", [True, False])
def test_narrowed_runs_are_prepared_once_and_enroll_what_plain_statements_do(settings, on):
    settings.ENGINE_PREPARED_STATEMENTS = on
    two_practices_missing_appointments()
    campaigns_run_due(now=ny(2026, 6, 15, 9, 16))  # in full: the early ones
    with CaptureQueriesContext(connection) as captured:
        campaigns_run_due(now=ny(2026, 6, 15, 9, 31))  # narrowed: the late ones
    statements = [q["sql"] for q in captured.captured_queries]
    assert sum(s.startswith("PREPARE trackstat_") for s in statements) == (1 if on else 0)
    # Both practices' runs: one statement of their shape.
    assert sum(s.startswith("EXECUTE trackstat_") for s in statements) == (1 if on else 0)
    assert sorted(patient for _, patient in entered()) == ["EARLY0", "EARLY1", "LATE0", "LATE1"]


def test_a_new_connection_prepares_again():
    two_practices_missing_appointments()
    campaigns_run_due(now=ny(2026, 6, 15, 9, 16))
    with connection.cursor() as cursor:  # a statement this connection has prepared
        cursor.execute("PREPARE trackstat_probe AS SELECT 1")
    connection.close()
    with CaptureQueriesContext(connection) as captured:
        campaigns_run_due(now=ny(2026, 6, 15, 9, 31))
    assert sum(q["sql"].startswith("PREPARE") for q in captured.captured_queries) == 1
    assert len(entered()) == 4


def test_a_statement_postgresql_refuses_to_prepare_runs_plainly_in_the_same_transaction():
    with transaction.atomic(), connection.cursor() as cursor:
        # The type of $1 cannot be inferred: PREPARE fails, the plain statement does not.
        prepared.narrowed_execute(cursor, "SELECT %s IS NULL", [None])
        assert cursor.fetchone() == (True,)
        prepared.narrowed_execute(cursor, "SELECT %s IS NULL", [None])  # remembered
        assert cursor.fetchone() == (True,)
        cursor.execute("SELECT 1")  # the transaction is still usable
        assert cursor.fetchone() == (1,)


def test_consecutive_narrowed_runs_share_one_transaction():
    two_practices_missing_appointments()
    campaigns_run_due(now=ny(2026, 6, 15, 9, 16))
    with CaptureQueriesContext(connection) as captured:
        campaigns_run_due(now=ny(2026, 6, 15, 9, 31))
    statements = [q["sql"] for q in captured.captured_queries]
    assert statements.count("SET LOCAL synchronous_commit = off") == 1
    assert statements.count("SET LOCAL plan_cache_mode = force_generic_plan") == 1
    assert sum(s.startswith("EXECUTE trackstat_") for s in statements) == 1
    assert len(entered()) == 4


def test_narrowed_runs_are_one_statement_per_shape_and_each_run_counts():
    first, second = two_practices_missing_appointments()
    # Another shape (30 minutes), in the first practice: its 9:00 appointment crosses at 9:30.
    later = drip(
        Clinic(first.practice),
        {"type": "missed_appointment", "minutes_after": 30},
        enabled_at=ny(2026, 6, 1),
        messages=[sms("Still missed you")],
    )
    # In full at 9:16: the early ones (the 30-minute campaign has nothing yet, so no run).
    assert campaigns_run_due(now=ny(2026, 6, 15, 9, 16)) == (2, 2)
    with CaptureQueriesContext(connection) as captured:
        assert campaigns_run_due(now=ny(2026, 6, 15, 9, 31)) == (3, 3)  # narrowed
    statements = [q["sql"] for q in captured.captured_queries]
    assert sum(s.startswith("EXECUTE trackstat_") for s in statements) == 2
    assert entered() == sorted(
        [
            (first.pk, "EARLY0"),
            (first.pk, "LATE0"),
            (second.pk, "EARLY1"),
            (second.pk, "LATE1"),
            (later.pk, "EARLY0"),
        ]
    )
