"""Narrowed continuous runs through statements PostgreSQL has planned once (issue 20).

A continuous campaign evaluated by what changed (``campaigns.engine.watermark``) runs its
audience ``INSERT … SELECT`` for a handful of patients: PostgreSQL then spends 2.5-3.5 ms
planning the statement and 0.2 ms running it, at every such run, a hundred or more a minute.
The statement's text is the same for every campaign of a shape (``campaigns.engine.compiled``
fills in the values), so each connection prepares it once (``PREPARE``) and runs it with
``EXECUTE`` and a generic plan (``plan_cache_mode = force_generic_plan`` for the
transaction, which the tick's consecutive narrowed runs share): planned once for any values,
which costs nothing more to run when the patients are a short list. Full evaluations (every
patient of the practice) keep a plan made for their values: they never come here.

- **Per connection.** Prepared statements live as long as the database session; the names
  prepared are remembered per connection object, so a new connection prepares again. Up to
  ``PREPARED_PER_CONNECTION`` per connection, the least recently used deallocated first.
- **Refused or unusual statements** (a parameter PostgreSQL cannot type, a ``%`` in the text)
  are remembered as not preparable and run as before; the ``PREPARE`` runs in a savepoint, so
  a refusal leaves the run's transaction as it was.
- **Poolers.** A session-level prepared statement needs the same server session from
  ``PREPARE`` to ``EXECUTE``: behind a pooler in transaction mode (PgBouncer's
  ``pool_mode = transaction``) set ``ENGINE_PREPARED_STATEMENTS=0``.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict

from django.conf import settings
from django.db import DatabaseError, connection, transaction

PREPARED_PER_CONNECTION = 256

# psycopg connection → {statement text: prepared name, or None when it cannot be prepared}.
_prepared: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_lock = threading.Lock()
_MISSING = object()


def placeholders_numbered(sql: str) -> str | None:
    """``sql`` with its ``%s`` placeholders as ``$1``, ``$2``, …; None when it holds any other
    percent sign (an escaped ``%%``), which this does not translate."""
    parts = sql.split("%s")
    if any("%" in part for part in parts):
        return None
    numbered = "".join(f"{part}${n}" for n, part in enumerate(parts[:-1], start=1))
    return numbered + parts[-1]


def generic_plans() -> None:
    """For the rest of the current transaction, prepared statements run with a generic plan
    (PostgreSQL): called once by the transaction of narrowed runs."""
    if connection.vendor == "postgresql" and settings.ENGINE_PREPARED_STATEMENTS:
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")


def narrowed_execute(cursor, sql: str, params: list) -> None:
    """Run ``sql`` with ``params`` on ``cursor`` (the default connection's) as this
    connection's prepared statement, preparing it on first use; as a plain statement where it
    cannot be prepared, on other databases, or with ``ENGINE_PREPARED_STATEMENTS`` off. For
    short-listed runs only (see the module), in a transaction that called ``generic_plans``
    (without it PostgreSQL plans each run for its values: right, only slower)."""
    if connection.vendor != "postgresql" or not settings.ENGINE_PREPARED_STATEMENTS:
        cursor.execute(sql, params)
        return
    raw = connection.connection
    with _lock:
        names = _prepared.setdefault(raw, OrderedDict())
        name = names.get(sql, _MISSING)
        if name is not _MISSING:
            names.move_to_end(sql)
    if name is _MISSING:
        name = _prepare(cursor, sql, names)
    if name is None:
        cursor.execute(sql, params)
        return
    cursor.execute(f"EXECUTE {name}({', '.join(['%s'] * len(params))})", params)


def _prepare(cursor, sql: str, names: OrderedDict) -> str | None:
    numbered = placeholders_numbered(sql)
    name = None
    if numbered is not None:
        candidate = "trackstat_" + hashlib.blake2b(sql.encode(), digest_size=8).hexdigest()
        try:
            with transaction.atomic():  # a savepoint: a refusal leaves the run's transaction
                cursor.execute(f"PREPARE {candidate} AS {numbered}")
            name = candidate
        except DatabaseError:
            name = None
    with _lock:
        names[sql] = name
        dropped = []
        while len(names) > PREPARED_PER_CONNECTION:
            dropped.append(names.popitem(last=False)[1])
    for old in dropped:
        if old is not None:
            cursor.execute(f"DEALLOCATE {old}")
    return name
