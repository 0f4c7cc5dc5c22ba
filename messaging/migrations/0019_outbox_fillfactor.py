"""Leave room in each page of ``messaging_outboundmessage`` (PostgreSQL only).

Sending one message rewrites its row four or five times: the claim, the re-check (its
``passed_check_at``, the STOP footer), the exactly-once mark and the record of ``sent``.
The mark and the re-check change no indexed column, so with room on the row's page
PostgreSQL writes the new version there (a HOT update) instead of adding an entry to each of
the table's fifteen indexes. Pages written from now on keep the room.
"""

from django.db import migrations

from trackstat.migration_ops import fillfactor


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0018_outbox_passed_check_at"),
    ]

    operations = [
        fillfactor("messaging_outboundmessage", 80),
    ]
