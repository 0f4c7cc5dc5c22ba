"""Operations shared by the apps' migrations."""

from __future__ import annotations

from django.db import migrations


def fillfactor(table: str, percent: int) -> migrations.RunPython:
    """Fill the pages of ``table`` written from now on only to ``percent`` (PostgreSQL; other
    databases have no such setting): room for a row's next version on its own page (a HOT
    update, no new index entries). Reversed: the default (100)."""

    def set_(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"ALTER TABLE {table} SET (fillfactor = {int(percent)})")

    def reset(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"ALTER TABLE {table} RESET (fillfactor)")

    return migrations.RunPython(set_, reset)
