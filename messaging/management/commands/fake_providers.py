"""``manage.py fake_providers --port N``: serve the fake Twilio and SendGrid APIs."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from messaging.fake_providers import FakeProviders


class Command(BaseCommand):
    help = (
        "Serve fake Twilio and SendGrid APIs for the official SDKs (see messaging.fake_providers)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8025)
        parser.add_argument(
            "--slow-seconds",
            type=float,
            default=15.0,
            help="How long the 'slow' recipients wait before answering.",
        )

    def handle(self, *args, host: str, port: int, slow_seconds: float, **options):
        fake = FakeProviders(host, port, slow_seconds=slow_seconds)
        url = fake.base_url
        self.stdout.write(
            f"Fake providers on {url}\n"
            f"  TWILIO_API_BASE_URL={url} SMS_PROVIDER=twilio\n"
            f"  SENDGRID_API_BASE_URL={url} EMAIL_PROVIDER=sendgrid"
        )
        try:
            fake.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            fake.server.server_close()
