"""Message providers behind one small interface (``base.Provider``).

``sandbox`` records messages and reports them delivered; it is the default when no
credentials are set. Twilio (SMS) and SendGrid (email) arrive with the messaging issue.
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
    raise NotImplementedError(f"The {name} provider is not built yet; use sandbox.")
