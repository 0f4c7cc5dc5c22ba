"""Materializing due steps reads the due enrollments once per pass, not once per batch
(``campaigns.engine.steps.steps_materialize``): the cost of a tick's materialize phase
follows the number of due steps, not its square."""

from __future__ import annotations

import pytest
from django.db import connection

from campaigns.engine.enroll import campaigns_run_due
from campaigns.engine.steps import steps_materialize
from campaigns.models import Enrollment
from messaging.models import OutboundMessage
from tests.campaigns.builders import Clinic, ny
from tests.campaigns.test_shared_address import blast

pytestmark = pytest.mark.django_db

PATIENTS = 60
BATCH = 3


def enrollment_rows_read() -> int:
    """Rows of the enrollments table read so far in this transaction (the test's)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COALESCE(seq_tup_read, 0) + COALESCE(idx_tup_fetch, 0) "
            "FROM pg_stat_xact_user_tables WHERE relname = %s",
            [Enrollment._meta.db_table],
        )
        return cursor.fetchone()[0]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's table statistics")
def test_materializing_reads_each_due_enrollment_a_bounded_number_of_times(monkeypatch):
    monkeypatch.setattr("campaigns.engine.steps.BATCH", BATCH)
    clinic = Clinic()
    for n in range(PATIENTS):
        clinic.patient(phone=f"+1312555{n:04d}")
    campaign = blast(clinic)
    at = ny(2026, 6, 15, 12, 0)
    campaigns_run_due(now=at)
    assert Enrollment.objects.filter(campaign=campaign).count() == PATIENTS
    with connection.cursor() as cursor:
        # As PostgreSQL plans it at scale (statistics that have not seen the due rows yet):
        # bitmap scans, each reading its whole range.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
    before = enrollment_rows_read()
    queued, skipped = steps_materialize(now=at)
    read = enrollment_rows_read() - before
    assert (queued, skipped) == (PATIENTS, 0)
    assert OutboundMessage.objects.filter(campaign=campaign).count() == PATIENTS
    # Each due enrollment is read a few times (the pass, its batch's claim, load and update,
    # the next pass): 240 rows here. Claiming every batch from the whole due set read 750,
    # growing with the square of the due steps.
    assert read <= 5 * PATIENTS, read
