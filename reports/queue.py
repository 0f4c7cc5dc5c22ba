"""The roll-up's queue of changed messages (``reports.models.PendingMessage``), filled by
database triggers on the outbox so that every writer queues what it changes — the engine's
bulk inserts, status transitions, webhooks, raw SQL — in its own transaction, without knowing
about reports.

A campaign message (not a test send) is queued when it is inserted with ``report_pending``
(the column's default) and whenever an UPDATE sets ``report_pending``. On PostgreSQL inserts
are queued per statement (one ``INSERT … SELECT`` from the statement's new rows, so a bulk
insert of a million messages queues them in one go), updates per row. SQLite has row
triggers only.

The triggers are (re)installed after every ``migrate`` (``post_migrate``): SQLite drops a
table's triggers when a later migration rebuilds the table, so installing them once in a
migration would not keep them.
"""

from __future__ import annotations

QUEUE = "reports_pendingmessage"
OUTBOX = "messaging_outboundmessage"

POSTGRES_TRIGGERS = [
    """
    CREATE OR REPLACE FUNCTION reports_queue_inserted() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO reports_pendingmessage (message_id)
        SELECT id FROM inserted
        WHERE report_pending AND NOT is_test AND campaign_id IS NOT NULL ORDER BY id;
        RETURN NULL;
    END $$
    """,
    """
    CREATE OR REPLACE TRIGGER reports_queue_inserted AFTER INSERT ON messaging_outboundmessage
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION reports_queue_inserted()
    """,
    """
    CREATE OR REPLACE FUNCTION reports_queue_marked() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO reports_pendingmessage (message_id) VALUES (NEW.id);
        RETURN NULL;
    END $$
    """,
    """
    CREATE OR REPLACE TRIGGER reports_queue_marked AFTER UPDATE OF report_pending
    ON messaging_outboundmessage
    FOR EACH ROW WHEN (NEW.report_pending AND NOT NEW.is_test AND NEW.campaign_id IS NOT NULL)
    EXECUTE FUNCTION reports_queue_marked()
    """,
]

SQLITE_TRIGGERS = [
    """
    CREATE TRIGGER IF NOT EXISTS reports_queue_inserted AFTER INSERT ON messaging_outboundmessage
    FOR EACH ROW WHEN NEW.report_pending AND NOT NEW.is_test AND NEW.campaign_id IS NOT NULL
    BEGIN INSERT INTO reports_pendingmessage (message_id) VALUES (NEW.id); END
    """,
    """
    CREATE TRIGGER IF NOT EXISTS reports_queue_marked AFTER UPDATE OF report_pending
    ON messaging_outboundmessage
    FOR EACH ROW WHEN NEW.report_pending AND NOT NEW.is_test AND NEW.campaign_id IS NOT NULL
    BEGIN INSERT INTO reports_pendingmessage (message_id) VALUES (NEW.id); END
    """,
]


def triggers_install(connection) -> None:
    """Create (or replace) the queue's triggers; a no-op on other databases."""
    statements = {"postgresql": POSTGRES_TRIGGERS, "sqlite": SQLITE_TRIGGERS}.get(
        connection.vendor, []
    )
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


def triggers_remove(connection) -> None:
    with connection.cursor() as cursor:
        for name in ("reports_queue_inserted", "reports_queue_marked"):
            cursor.execute(
                f"DROP TRIGGER IF EXISTS {name}"
                + ("" if connection.vendor == "sqlite" else f" ON {OUTBOX}")
            )
        if connection.vendor == "postgresql":
            cursor.execute("DROP FUNCTION IF EXISTS reports_queue_inserted()")
            cursor.execute("DROP FUNCTION IF EXISTS reports_queue_marked()")


def installed_on_migrate(sender, *, using: str, **kwargs) -> None:
    """``post_migrate``: the triggers exist whatever migrations ran (see the module)."""
    from django.db import connections

    connection = connections[using]
    if QUEUE in connection.introspection.table_names() and OUTBOX in (
        connection.introspection.table_names()
    ):
        triggers_install(connection)
