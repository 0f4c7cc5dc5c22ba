"""Message providers behind one small interface (``base.Provider``).

``sandbox`` records messages and reports them delivered; it is the default when no
credentials are set. ``twilio`` sends SMS and ``sendgrid`` email through their official SDKs
(``TWILIO_API_BASE_URL`` / ``SENDGRID_API_BASE_URL`` point them at ``manage.py
fake_providers`` in development and tests).
"""

from __future__ import annotations

from django.conf import settings

from messaging.providers.base import Provider
from messaging.providers.sandbox import SandboxProvider
from trackstat.models import Practice


def provider_for(channel: str, practice: Practice) -> Provider:
    """The provider that sends ``channel`` for ``practice``."""
    name = settings.SMS_PROVIDER if channel == "sms" else settings.EMAIL_PROVIDER
    if name == "sandbox":
        return SandboxProvider()
    if name == "twilio" and channel == "sms":
        from messaging.providers.twilio import TwilioProvider  # the SDK only when used

        return TwilioProvider()
    if name == "sendgrid" and channel == "email":
        from messaging.providers.sendgrid import SendGridProvider

        return SendGridProvider()
    raise NotImplementedError(f"No {name} provider for {channel}.")
