"""Message providers behind one small interface (``base.Provider``).

``sandbox`` records messages and reports them delivered; it is the default when no
credentials are set. ``twilio`` sends SMS and ``sendgrid`` email through their official SDKs
(``TWILIO_API_BASE_URL`` / ``SENDGRID_API_BASE_URL`` point them at ``manage.py
fake_providers`` in development and tests). ``SMS_PROVIDER`` / ``EMAIL_PROVIDER`` choose the
provider; the credentials are the practice's own where it has them, else the environment's
(``trackstat.credentials.credentials_for``).
"""

from __future__ import annotations

import threading

from django.conf import settings

from messaging.providers.base import Provider
from messaging.providers.sandbox import SandboxProvider
from trackstat.credentials import credentials_for
from trackstat.models import Practice

# Provider objects hold an HTTP session (a pool of kept-alive connections): one per thread
# and set of credentials, so a worker reuses its connections from one message to the next
# instead of opening one per message. Keyed by everything the object was built from.
_local = threading.local()


def provider_for(channel: str, practice: Practice) -> Provider:
    """The provider that sends ``channel`` for ``practice``."""
    name = settings.SMS_PROVIDER if channel == "sms" else settings.EMAIL_PROVIDER
    if name == "sandbox":
        return SandboxProvider()
    if name == "twilio" and channel == "sms":
        from messaging.providers.twilio import TwilioProvider  # the SDK only when used

        credentials = credentials_for(practice)
        key = (
            name,
            credentials.twilio_account_sid,
            credentials.twilio_auth_token,
            settings.TWILIO_API_BASE_URL,
        )
        return _cached(
            key,
            lambda: TwilioProvider(
                account_sid=credentials.twilio_account_sid,
                auth_token=credentials.twilio_auth_token,
            ),
        )
    if name == "sendgrid" and channel == "email":
        from messaging.providers.sendgrid import SendGridProvider  # the SDK only when used

        api_key = credentials_for(practice).sendgrid_api_key
        key = (name, api_key, settings.SENDGRID_API_BASE_URL)
        return _cached(key, lambda: SendGridProvider(api_key=api_key))
    raise NotImplementedError(f"No {name} provider for {channel}.")


def _cached(key: tuple, build) -> Provider:
    providers = getattr(_local, "providers", None)
    if providers is None:
        providers = _local.providers = {}
    provider = providers.get(key)
    if provider is None:
        if len(providers) >= 256:  # many practices with their own accounts: start over
            providers.clear()
        provider = providers[key] = build()
    return provider
