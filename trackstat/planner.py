"""Planner settings for the hot paths' transactions (PostgreSQL)."""

from __future__ import annotations

from django.db import connection


def reads_by_key() -> None:
    """Let the current transaction read every table by index only (PostgreSQL).

    For the statements of a batch that touch a few hundred rows by key: where the statistics
    have not yet seen rows just written (autovacuum analyzes them later: a bulk import, a big
    run of the engine), PostgreSQL plans a scan of a whole table for each statement, a cost
    per batch that grows with the table. Only in a transaction of its own: a caller's
    enclosing transaction (a test's, an admin action's) keeps its planner settings."""
    if connection.vendor == "postgresql" and len(connection.atomic_blocks) == 1:
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
