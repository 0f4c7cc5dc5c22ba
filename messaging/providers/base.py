"""The small interface every message provider implements (DESIGN §7)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Outgoing:
    """One message for a provider. ``outbox_id`` is the only metadata that travels with it:
    nothing about the patient does."""

    outbox_id: int
    practice_id: int
    channel: str
    to: str
    sender: str
    subject: str
    body: str
    # Emails: this message's one-click unsubscribe URL (for the List-Unsubscribe headers).
    unsubscribe_url: str = ""


@dataclass(frozen=True)
class Accepted:
    provider_id: str
    # What the provider says about it now, in its own words ("delivered"), when it says (a
    # lookup); empty after a send.
    provider_status: str = ""


class ProviderError(Exception):
    """A send that did not succeed.

    ``retryable``: the request was not accepted (rate limit, connection refused) and may be
    sent again later. ``ambiguous``: the provider may have accepted it (a timeout after the
    request went out): never resend blindly, reconcile. Otherwise the failure is final.
    ``opted_out``: the provider says the recipient opted out (Twilio 21610).
    """

    def __init__(
        self,
        code: str,
        message: str = "",
        *,
        retryable: bool = False,
        ambiguous: bool = False,
        opted_out: bool = False,
    ):
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.retryable = retryable
        self.ambiguous = ambiguous
        self.opted_out = opted_out


class Provider(Protocol):
    name: str

    def send(self, outgoing: Outgoing) -> Accepted: ...


class SupportsLookup(Protocol):
    """Optional: a provider that can find a message it may have accepted without our hearing
    (a send that timed out), for reconciliation. ``lookup`` returns ``None`` when the provider
    has no such message and raises ``ProviderError`` when it could not tell; ``exclude`` names
    provider ids already known to belong to other outbox messages."""

    def lookup(
        self, outgoing: Outgoing, *, sent_after: dt.datetime, exclude: frozenset[str] = frozenset()
    ) -> Accepted | None: ...
