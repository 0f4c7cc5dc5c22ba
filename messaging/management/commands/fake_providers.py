"""``manage.py fake_providers --port N``: serve the fake Twilio and SendGrid APIs, and with
``--callback-base`` post signed delivery callbacks back to the app."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.management.base import BaseCommand, CommandError

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
        parser.add_argument(
            "--callback-base",
            default="",
            help="The app's address (e.g. http://127.0.0.1:8000): post delivery callbacks there.",
        )
        parser.add_argument(
            "--twilio-auth-token", default="", help="Signs Twilio status callbacks."
        )
        parser.add_argument(
            "--sendgrid-private-key-file",
            default="",
            help="A PEM EC P-256 private key that signs SendGrid events.",
        )
        parser.add_argument(
            "--callback-disorder",
            action="store_true",
            help="Post callbacks out of order and duplicated.",
        )

    def handle(
        self,
        *args,
        host: str,
        port: int,
        slow_seconds: float,
        callback_base: str,
        twilio_auth_token: str,
        sendgrid_private_key_file: str,
        callback_disorder: bool,
        **options,
    ):
        private_key = None
        if sendgrid_private_key_file:
            with open(sendgrid_private_key_file, "rb") as key_file:
                private_key = serialization.load_pem_private_key(key_file.read(), password=None)
            if not isinstance(private_key, ec.EllipticCurvePrivateKey):
                raise CommandError("--sendgrid-private-key-file: not an EC private key")
        fake = FakeProviders(
            host,
            port,
            slow_seconds=slow_seconds,
            callback_base=callback_base,
            twilio_auth_token=twilio_auth_token,
            sendgrid_private_key=private_key,
            callback_disorder=callback_disorder,
        )
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
