"""``manage.py rotate_credentials``: after a ``SECRET_KEY`` rotation (the old key in
``SECRET_KEY_FALLBACKS``), re-encrypt the practices' stored provider secrets under the new key,
so that the fallback can be dropped. Prints counts and practice ids, never a secret."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from trackstat.credentials import provider_credentials_reencrypt


class Command(BaseCommand):
    help = "Re-encrypt the practices' provider secrets under the current SECRET_KEY."

    def handle(self, *args, **options) -> None:
        done, unreadable = provider_credentials_reencrypt()
        self.stdout.write(f"Re-encrypted the provider secrets of {done} practices.")
        for practice_id, field in unreadable:
            self.stdout.write(
                f"practice {practice_id}: {field} cannot be decrypted with SECRET_KEY or "
                "SECRET_KEY_FALLBACKS; left as it is (its Administrator must enter it again)."
            )
