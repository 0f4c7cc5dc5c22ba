"""The sandbox provider: records each message (visible on the Sandbox page) and reports it
delivered. The default when no provider credentials are set; nothing leaves the machine."""

from __future__ import annotations

import datetime as dt

from messaging.models import SandboxMessage
from messaging.providers.base import Accepted, Outgoing


class SandboxProvider:
    name = "sandbox"

    def send(self, outgoing: Outgoing) -> Accepted:
        provider_id = f"SB{outgoing.outbox_id:012d}"
        # Idempotent by provider id: sending the same outbox message twice records it once.
        SandboxMessage.objects.get_or_create(
            provider_id=provider_id,
            defaults={
                "practice_id": outgoing.practice_id,
                "message_id": outgoing.outbox_id,
                "channel": outgoing.channel,
                "to": outgoing.to,
                "sender": outgoing.sender,
                "subject": outgoing.subject,
                "body": outgoing.body,
            },
        )
        return Accepted(provider_id=provider_id)

    def lookup(
        self, outgoing: Outgoing, *, sent_after: dt.datetime, exclude: frozenset[str] = frozenset()
    ) -> Accepted | None:
        """The SandboxMessage recorded for this outbox message, if any."""
        recorded = (
            SandboxMessage.objects.filter(message_id=outgoing.outbox_id)
            .values_list("provider_id", flat=True)
            .first()
        )
        return Accepted(provider_id=recorded, provider_status="delivered") if recorded else None

    def simulated_events(self, accepted: Accepted) -> list[tuple[str, str]]:
        """The delivery report a real provider would post back later, at once."""
        return [("delivered", f"{accepted.provider_id}:delivered")]
