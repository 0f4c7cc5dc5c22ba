"""Email unsubscribe links (DESIGN §7): each campaign email carries its own
``{PUBLIC_BASE_URL}/unsubscribe/<token>/``, whose random token names the message and authorizes
one action, opting that patient out of email. The outbox puts it in the ``List-Unsubscribe``
header; the engine in the email's footer; ``messaging.links`` answers it.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import IntegrityError, transaction

from messaging.models import OutboundMessage, UnsubscribeToken


def unsubscribe_url(token: str) -> str:
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}/unsubscribe/{token}/"


def unsubscribe_token_new() -> str:
    """A fresh unsubscribe token (128 random bits: it authorizes an opt-out)."""
    return secrets.token_urlsafe(16)


def unsubscribe_url_for(message: OutboundMessage) -> str:
    """The unsubscribe URL of an email (for its body and the ``List-Unsubscribe`` header);
    made on first use for an email the engine did not materialize. "" for a message with no
    patient (a staff member's test send): there is nobody to unsubscribe."""
    if message.patient_id is None:
        return ""
    existing = UnsubscribeToken.objects.filter(message=message).values_list("token", flat=True)
    token = existing.first()
    if token is None:
        try:
            with transaction.atomic():
                token = UnsubscribeToken.objects.create(
                    practice_id=message.practice_id, message=message, token=unsubscribe_token_new()
                ).token
        except IntegrityError:  # made meanwhile by a concurrent caller
            token = existing.get()
    return unsubscribe_url(token)
