"""SMS through Twilio, with the official ``twilio`` SDK (DESIGN §7).

Only the outbox id travels as metadata, in the status-callback URL; nothing about the patient
does. Errors map onto ``ProviderError`` so the engine knows whether it may send again:

=========================================  =======================================
what happened                              ProviderError
=========================================  =======================================
21610 (recipient replied STOP)             final, ``opted_out``
21211 / 21614 (invalid / not a mobile)     final
HTTP 429 or code 20429 (rate limited)      retryable
other 5xx                                  retryable: Twilio answered, and a 5xx means
                                           it did not accept the message
connection refused, DNS, connect timeout   retryable: the request never went out
read timeout, connection dropped after     ambiguous: Twilio may have accepted it;
the request went out                       the message goes to ``unknown``
any other 4xx                              final
=========================================  =======================================

Error messages carry the HTTP status and the Twilio code only: Twilio's own text can quote
the phone number.
"""

from __future__ import annotations

import datetime as dt

import requests
from django.conf import settings
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from urllib3.exceptions import MaxRetryError, NewConnectionError

from messaging.providers.base import Accepted, Outgoing, ProviderError, environment_read_once

# Seconds for connecting and for each read. A send blocks a worker for at most this long.
DEFAULT_TIMEOUT = 10.0
# Twilio drops a message still queued at its end after this many seconds. A birthday text
# that waited half a day in a queue could arrive in the middle of the night.
VALIDITY_PERIOD = 4 * 60 * 60

OPTED_OUT = 21610
FINAL_CODES = frozenset({21211, 21614})
RATE_LIMITED = 20429
# How many recent messages to the same number a lookup reads.
LOOKUP_LIMIT = 20


class TwilioProvider:
    name = "twilio"

    def __init__(
        self,
        *,
        account_sid: str | None = None,
        auth_token: str | None = None,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ):
        self.client = Client(
            account_sid or settings.TWILIO_ACCOUNT_SID,
            auth_token or settings.TWILIO_AUTH_TOKEN,
            http_client=TwilioHttpClient(timeout=timeout),
        )
        base_url = base_url if base_url is not None else settings.TWILIO_API_BASE_URL
        if base_url:
            # The Api domain builds every URL from ``base_url`` (``Domain.absolute_url``).
            self.client.api.base_url = base_url.rstrip("/")
        environment_read_once(self.client.http_client.session, self.client.api.base_url)

    def send(self, outgoing: Outgoing) -> Accepted:
        if not outgoing.sender:
            raise ProviderError("no_sender", "the practice has no SMS sender number")
        callback = f"{settings.PUBLIC_BASE_URL}/webhooks/twilio/status?outbox={outgoing.outbox_id}"
        try:
            message = self.client.messages.create(
                to=outgoing.to,
                from_=outgoing.sender,
                body=outgoing.body,
                status_callback=callback,
                validity_period=VALIDITY_PERIOD,
            )
        except TwilioRestException as error:
            raise _rest_error(error) from None
        except requests.exceptions.ConnectTimeout:
            raise ProviderError("connect_timeout", retryable=True) from None
        except requests.exceptions.Timeout:
            raise ProviderError("read_timeout", ambiguous=True) from None
        except requests.exceptions.ConnectionError as error:
            raise _connection_error(error) from None
        return Accepted(provider_id=message.sid)

    def lookup(
        self, outgoing: Outgoing, *, sent_after: dt.datetime, exclude: frozenset[str] = frozenset()
    ) -> Accepted | None:
        """Find a message whose create call got no answer (so we never learned its sid):
        Twilio's messages to the same number from the same sender since ``sent_after``, with
        exactly the body we sent. ``exclude``: sids already known to belong to other outbox
        messages (the same text sent twice). Raises ``ProviderError`` when Twilio could not
        be asked."""
        if not outgoing.sender:
            return None
        try:
            candidates = self.client.messages.list(
                to=outgoing.to,
                from_=outgoing.sender,
                date_sent_after=sent_after.astimezone(dt.UTC),
                limit=LOOKUP_LIMIT,
            )
        except TwilioRestException as error:
            raise _rest_error(error) from None
        except requests.exceptions.RequestException:
            raise ProviderError("lookup_failed", retryable=True) from None
        for candidate in candidates:
            if candidate.body == outgoing.body and candidate.sid not in exclude:
                return Accepted(provider_id=candidate.sid, provider_status=candidate.status or "")
        return None


def _rest_error(error: TwilioRestException) -> ProviderError:
    code = str(error.code or error.status)
    message = f"HTTP {error.status}"
    if error.code == OPTED_OUT:
        return ProviderError(code, message, opted_out=True)
    if error.code in FINAL_CODES:
        return ProviderError(code, message)
    if error.status == 429 or error.code == RATE_LIMITED:
        return ProviderError(code, message, retryable=True)
    if error.status >= 500:
        return ProviderError(code, message, retryable=True)
    return ProviderError(code, message)


def _connection_error(error: requests.exceptions.ConnectionError) -> ProviderError:
    """Refused or unresolvable (urllib3 gave up before connecting): the request never went
    out. Anything else (the connection reset or closed while waiting for the answer) came
    after the request was sent: Twilio may have accepted it."""
    cause = error.args[0] if error.args else None
    if isinstance(cause, MaxRetryError) and isinstance(cause.reason, NewConnectionError):
        return ProviderError("connection_failed", retryable=True)
    return ProviderError("connection_dropped", ambiguous=True)
