"""How durably a tick's own writes are committed.

A tick commits often: every campaign run (its run record, enrollments and arms) and every
batch of materialized messages is a transaction of its own, and on PostgreSQL each commit
waits for its WAL record to reach the disk, 1.5-2.5 ms here, longer than most runs
themselves. Those transactions commit asynchronously (``synchronous_commit = off`` for the
transaction alone): the commit returns once written to the WAL buffers, which the WAL writer
flushes within a fraction of a second.

Why nothing is sent twice or lost by it. What a crash can lose is only the last commits
before it, each whole, never part of one: a run with its run record and enrollments, or a
batch of messages with the enrollments it moved on. The next tick finds them not done and does
them again, exactly as if the crash had come before. Nothing leaves TrackStat from such a
write alone: a message is handed to a provider only after its claim commits, and the claim
(``messaging.outbox.dispatch``), the watermark of continuous campaigns and every write of the
API and the web commit synchronously. WAL is flushed in order, so a synchronous commit makes
every asynchronous commit before it durable too: once a claim or a watermark has committed,
whatever it was derived from has as well.
"""

from __future__ import annotations

from django.db import connection

# The same as ``commit_async`` inside a statement of the transaction (a SELECT list or a FROM
# item), for a transaction whose first statement can carry it: its one parameter is
# ``may_commit_async()``.
COMMIT_ASYNC_SQL = "CASE WHEN %s THEN set_config('synchronous_commit', 'off', true) END"


def may_commit_async() -> bool:
    """Whether the current transaction may commit asynchronously: on PostgreSQL, in a
    transaction of its own (the outermost atomic block); a caller's enclosing transaction
    keeps its own durability."""
    return connection.vendor == "postgresql" and len(connection.atomic_blocks) == 1


def commit_async() -> None:
    """Let the current transaction commit without waiting for its WAL flush (PostgreSQL;
    nothing elsewhere). Only for the tick's writes that a later tick would redo if a crash
    lost them; see the module's docstring. Only in a transaction of its own
    (``may_commit_async``)."""
    if may_commit_async():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")
