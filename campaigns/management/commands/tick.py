"""``manage.py tick [--now ISO8601]``: one scheduler tick, in process, with a JSON summary."""

from __future__ import annotations

import datetime as dt
import json

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from campaigns.engine import tick
from messaging.webhook_events import webhook_events_process_pending
from trackstat.webhook_send import webhook_deliveries_send_due


def parse_instant(value: str) -> dt.datetime:
    try:
        instant = dt.datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--now: {value!r} is not an ISO 8601 date and time.") from None
    if timezone.is_naive(instant):
        raise CommandError("--now: give an offset, for example 2026-03-08T10:00:00-05:00.")
    return instant


class Command(BaseCommand):
    help = (
        "Apply pending provider webhook events, then run one scheduler tick in process "
        "(sending due messages too); print its summary."
    )

    def add_arguments(self, parser):
        parser.add_argument("--now", help="The instant to run at (ISO 8601 with offset).")

    def handle(self, *args, now: str | None = None, **options):
        instant = parse_instant(now) if now else timezone.now()
        # Provider events received and not applied yet first (an opt-out before sending);
        # in process, nothing else may be there to apply them.
        applied = webhook_events_process_pending(now=timezone.now(), min_age=dt.timedelta(0))
        summary = {**tick(now=instant, send="inline"), "webhook_events_applied": applied}
        # Outbound webhooks to EMR connectors due at that instant (DESIGN §4.1.1).
        summary.update(webhook_deliveries_send_due(now=instant))
        self.stdout.write(json.dumps(summary))
