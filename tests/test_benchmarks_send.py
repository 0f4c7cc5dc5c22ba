"""The send benchmark's CPU accounting (``benchmarks/send.py:cpu_snapshot``)."""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import connection

from benchmarks.send import EXITED_BACKENDS, cpu_snapshot

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="it reads PostgreSQL's processes"),
    pytest.mark.django_db,
]


def test_a_backend_that_exits_keeps_its_cpu_in_the_snapshot():
    """A worker that reconnects (``CELERY_DB_REUSE_MAX``) ends its backend: the CPU that
    backend used must still be counted, not left to "other programs"."""
    connection.ensure_connection()  # this database's own backend leads to the postmaster
    database = connection.settings_dict["NAME"]
    before = cpu_snapshot({}, database)
    with psycopg.connect(**connection.get_connection_params()) as other:
        other.execute("SELECT count(*) FROM generate_series(1, 5000000)").fetchone()
    deadline = time.monotonic() + 10
    while True:
        after = cpu_snapshot({}, database)
        if after[EXITED_BACKENDS] - before[EXITED_BACKENDS] >= 0.1 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert after[EXITED_BACKENDS] - before[EXITED_BACKENDS] >= 0.1
