"""Set-wise SQL for the roll-up's batches: thousands of rows per statement with few
parameters. On PostgreSQL a column of values travels as one array parameter (``unnest``), so
a statement's cost does not grow with a parameter per value; SQLite (the embedded default)
gets plain VALUES lists.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.db import connection

SQLITE_ROWS_PER_STATEMENT = 500


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def _sqlite_value(value):
    return value.isoformat() if isinstance(value, dt.date) else value


def ids_clause(column: str, ids: Sequence[int]) -> tuple[str, list]:
    """``column`` is one of ``ids``: SQL and its parameters."""
    if _postgres():
        return f"{column} = ANY(%s)", [list(ids)]
    return f"{column} IN ({', '.join(['%s'] * len(ids)) or 'NULL'})", list(ids)


def select(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def rows_insert(
    table: str,
    columns: Sequence[str],
    types: Sequence[str],
    rows: Sequence[Sequence],
    *,
    on_conflict: str = "",
) -> None:
    """Insert ``rows`` (tuples in ``columns`` order; ``types`` are their PostgreSQL types),
    with an optional ``ON CONFLICT …`` clause (the rows' keys must be distinct)."""
    if not rows:
        return
    names = ", ".join(columns)
    with connection.cursor() as cursor:
        if _postgres():
            arrays = ", ".join(f"%s::{kind}[]" for kind in types)
            cursor.execute(
                f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) "  # noqa: S608
                f"{on_conflict}",
                [list(column) for column in zip(*rows, strict=True)],
            )
            return
        row = "(" + ", ".join(["%s"] * len(columns)) + ")"
        for start in range(0, len(rows), SQLITE_ROWS_PER_STATEMENT):
            chunk = rows[start : start + SQLITE_ROWS_PER_STATEMENT]
            cursor.execute(
                f"INSERT INTO {table} ({names}) VALUES {', '.join([row] * len(chunk))} "  # noqa: S608
                f"{on_conflict}",
                [_sqlite_value(v) for r in chunk for v in r],
            )


def rows_update(
    table: str, columns: Sequence[str], types: Sequence[str], rows: Sequence[Sequence]
) -> None:
    """Set ``columns[1:]`` of the rows whose ``columns[0]`` (the key) matches, one statement
    per batch: ``UPDATE … FROM`` a set of (key, values…) rows."""
    if not rows:
        return
    key, *fields = columns
    with connection.cursor() as cursor:
        if _postgres():
            arrays = ", ".join(f"%s::{kind}[]" for kind in types)
            sets = ", ".join(f"{name} = v.{name}" for name in fields)
            cursor.execute(
                f"UPDATE {table} SET {sets} FROM unnest({arrays}) "  # noqa: S608
                f"AS v({', '.join(columns)}) WHERE {table}.{key} = v.{key}",
                [list(column) for column in zip(*rows, strict=True)],
            )
            return
        # SQLite names the columns of a VALUES list column1, column2, …
        sets = ", ".join(f"{name} = v.column{i + 2}" for i, name in enumerate(fields))
        row = "(" + ", ".join(["%s"] * len(columns)) + ")"
        for start in range(0, len(rows), SQLITE_ROWS_PER_STATEMENT):
            chunk = rows[start : start + SQLITE_ROWS_PER_STATEMENT]
            cursor.execute(
                f"UPDATE {table} SET {sets} FROM (VALUES {', '.join([row] * len(chunk))}) "  # noqa: S608
                f"AS v WHERE {table}.{key} = v.column1",
                [_sqlite_value(v) for r in chunk for v in r],
            )
