"""``manage.py create_practice NAME --timezone TZ [--sms-from …] [--email-from …] [--json]``."""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from trackstat.phones import phone_to_e164
from trackstat.services import practice_create


class Command(BaseCommand):
    help = "Create a practice (tenant) with its sender identity and a new API key."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "--timezone", required=True, help="IANA time zone, e.g. America/Chicago"
        )
        parser.add_argument("--sms-from", default="", help="Sender phone number (E.164)")
        parser.add_argument("--email-from", default="", help="Sender email address")
        parser.add_argument("--json", action="store_true", help='Print {"id", "api_key"}')

    def handle(self, *args, **options):
        sms_from = options["sms_from"]
        if sms_from:
            try:
                sms_from = phone_to_e164(sms_from)
            except ValueError as error:
                raise CommandError(f"--sms-from: {error}") from None
        try:
            practice, issued = practice_create(
                name=options["name"],
                time_zone=options["timezone"],
                sms_from=sms_from,
                email_from=options["email_from"],
                actor="manage.py create_practice",
            )
        except ValidationError as error:
            option = {
                "time_zone": "--timezone",
                "sms_from": "--sms-from",
                "email_from": "--email-from",
            }
            messages = [
                f"{option.get(field, field)}: {' '.join(msgs)}"
                for field, msgs in error.message_dict.items()
            ]
            raise CommandError("; ".join(messages)) from None
        if options["json"]:
            self.stdout.write(json.dumps({"id": practice.id, "api_key": issued.secret}))
        else:
            self.stdout.write(f"Created practice {practice.name} (id {practice.id}).")
            self.stdout.write(f"API key (shown once): {issued.secret}")
