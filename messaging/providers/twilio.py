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
import json
from base64 import b64encode

from django.conf import settings
from twilio.base.exceptions import TwilioRestException
from twilio.http import HttpClient
from twilio.http.response import Response
from twilio.rest import Client

from messaging.providers.base import Accepted, Outgoing, ProviderError
from messaging.providers.transport import NotSent, Transport, TransportError, form_encoded

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
DEFAULT_HOST = "https://api.twilio.com"


class TwilioProvider:
    name = "twilio"
    # Its send touches no database and holds nothing per call: several threads may send
    # through one provider object at once (``outbox.deliver``, ``SEND_CONCURRENCY``).
    concurrent_calls = True

    def __init__(
        self,
        *,
        account_sid: str | None = None,
        auth_token: str | None = None,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ):
        base_url = base_url if base_url is not None else settings.TWILIO_API_BASE_URL
        self.client = Client(
            account_sid or settings.TWILIO_ACCOUNT_SID,
            auth_token or settings.TWILIO_AUTH_TOKEN,
            http_client=TwilioTransport(base_url or DEFAULT_HOST, timeout=timeout),
        )
        if base_url:
            # The Api domain builds every URL from ``base_url`` (``Domain.absolute_url``).
            self.client.api.base_url = base_url.rstrip("/")

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
        except NotSent as error:
            raise ProviderError(error.code, retryable=True) from None
        except TransportError as error:  # it went out: Twilio may have accepted it
            raise ProviderError(error.code, ambiguous=True) from None
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
        except TransportError:
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


class TwilioTransport(HttpClient):
    """The Twilio SDK's ``HttpClient`` on a ``Transport``. ``TransportError`` comes out of the
    SDK's calls as it is (no ``requests`` exceptions); HTTP errors are the SDK's own
    ``TwilioRestException``."""

    def __init__(self, base_url: str, *, timeout: float):
        super().__init__(logger=None, is_async=False, timeout=timeout)
        self.transport = Transport(base_url, timeout=timeout, connections=settings.SEND_CONCURRENCY)

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        headers = dict(headers or {})
        if params:
            url = f"{url}?{form_encoded(params)}"
        body = None
        if data is not None and method.upper() not in ("GET", "DELETE"):
            if headers.get("Content-Type") in ("application/json", "application/scim+json"):
                body = json.dumps(data)
            else:
                body = form_encoded(data)
        if auth is not None:
            headers["Authorization"] = "Basic " + b64encode(
                f"{auth[0]}:{auth[1]}".encode("latin-1")
            ).decode("ascii")
        answer = self.transport.request(method.upper(), url, body=body, headers=headers)
        return Response(answer.status, answer.text, answer.headers)
