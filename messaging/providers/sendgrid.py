"""Email through SendGrid, with the official ``sendgrid`` SDK (DESIGN §7).

Only the outbox id travels as metadata, in ``custom_args`` (SendGrid echoes it in every event
webhook); nothing about the patient does. Errors map onto ``ProviderError``:

=========================================  =======================================
what happened                              ProviderError
=========================================  =======================================
HTTP 429 (rate limited)                    retryable
HTTP 5xx                                   retryable: SendGrid did not accept it
other 4xx (bad request, bad key, …)        final
connection refused, DNS, connect timeout   retryable: the request never went out
read timeout, connection dropped after     ambiguous: SendGrid may have accepted it;
the request went out                       the message goes to ``unknown``
=========================================  =======================================

The SendGrid message id is the ``X-Message-Id`` response header.

The SDK builds the message (``Mail``) and holds the key and its headers; the request goes out
over one pool of kept-alive connections per provider object (``transport.Transport``, kept
per worker thread by ``provider_for``). The SDK's own transport (``python_http_client``)
builds a new urllib opener for every request, and with it a new TLS context that loads the CA
bundle (tens of milliseconds of CPU) and a new connection: it capped a worker at a few dozen
emails a second.
"""

from __future__ import annotations

import datetime as dt
import json

from django.conf import settings
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import CustomArg, Header, Mail

from messaging.plaintext import html_to_text
from messaging.providers.base import Accepted, Outgoing, ProviderError
from messaging.providers.transport import NotSent, Transport, TransportError

DEFAULT_TIMEOUT = 10.0
DEFAULT_HOST = "https://api.sendgrid.com"


class SendGridProvider:
    name = "sendgrid"
    # Its send touches no database and holds nothing per call: several threads may send
    # through one provider object at once (``outbox.deliver``, ``SEND_CONCURRENCY``).
    concurrent_calls = True

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ):
        base_url = base_url if base_url is not None else settings.SENDGRID_API_BASE_URL
        self.client = SendGridAPIClient(
            api_key or settings.SENDGRID_API_KEY, host=(base_url or DEFAULT_HOST).rstrip("/")
        )
        self.timeout = timeout
        self.url = f"{self.client.host}/v3/mail/send"
        self.headers = {**self.client.client.request_headers, "Content-Type": "application/json"}
        self.transport = Transport(self.url, timeout=timeout, connections=settings.SEND_CONCURRENCY)

    def send(self, outgoing: Outgoing) -> Accepted:
        if not outgoing.sender:
            raise ProviderError("no_sender", "the practice has no sender email address")
        body = json.dumps(_mail(outgoing).get())
        try:
            response = self.transport.request("POST", self.url, body=body, headers=self.headers)
        except NotSent:
            raise ProviderError("connection_failed", retryable=True) from None
        except TransportError:
            # A read timeout or a dropped connection: the request went out, SendGrid may
            # have accepted it.
            raise ProviderError("no_answer", ambiguous=True) from None
        if response.status >= 400:
            raise _http_error(response.status)
        message_id = response.headers.get("X-Message-Id")
        if not message_id:
            # Accepted (2xx) but unidentifiable: it was sent, yet no event will match it.
            raise ProviderError(f"http_{response.status}", "no X-Message-Id", ambiguous=True)
        return Accepted(provider_id=message_id)

    def lookup(
        self, outgoing: Outgoing, *, sent_after: dt.datetime, exclude: frozenset[str] = frozenset()
    ) -> Accepted | None:
        """Always ``None``: without the (paid) Email Activity API there is no reliable way to
        find a message. An ``unknown`` email is settled by the first event webhook carrying
        its ``outbox_id`` (``delivered`` moves it forward), else failed at the deadline."""
        return None


def _mail(outgoing: Outgoing) -> Mail:
    mail = Mail(
        from_email=outgoing.sender,
        to_emails=outgoing.to,
        subject=outgoing.subject,
        # Campaign emails are HTML (sanitized when saved); a plain-text part that reads like
        # it, every link (the unsubscribe link too) written out, for clients that prefer it.
        plain_text_content=html_to_text(outgoing.body),
        html_content=outgoing.body,
    )
    mail.custom_arg = CustomArg("outbox_id", str(outgoing.outbox_id))
    # One-click unsubscribe (RFC 8058): the message's own tokenized link, served by
    # messaging.link_views. A staff member's test send has none.
    if outgoing.unsubscribe_url:
        mail.header = Header("List-Unsubscribe", f"<{outgoing.unsubscribe_url}>")
        mail.header = Header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    return mail


def _http_error(status: int) -> ProviderError:
    code = f"http_{status}"
    if status == 429 or status >= 500:
        return ProviderError(code, retryable=True)
    return ProviderError(code)
