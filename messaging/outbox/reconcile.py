"""Reconciling ``unknown`` messages (DESIGN §6): a send whose provider call got no answer may
or may not have gone out. It is never sent again; the provider is asked instead.

Found → ``sent`` (with its provider id), and any later status the provider reports with it.
Not found → left for the next round, and ``failed`` once past the deadline: a message the
provider has not shown in a day was not accepted. A provider that cannot be asked (an error
during the lookup) leaves the message for the next round, whatever its age.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.db.models import Q

from messaging.models import MessageStatus, OutboundMessage
from messaging.outbox.status import message_transition
from messaging.providers import provider_for
from messaging.providers.base import Outgoing, ProviderError

logger = logging.getLogger(__name__)

SOURCE = "reconcile"
DEADLINE = dt.timedelta(hours=24)
NOT_ACCEPTED = "not accepted by the provider (reconciled)"
# A provider's own status names (as a lookup reports them) → ours, beyond "sent".
PROVIDER_STATUSES = {
    "delivered": MessageStatus.DELIVERED,
    "undelivered": MessageStatus.UNDELIVERED,
    "failed": MessageStatus.FAILED,
}
# How far before the provider call a lookup searches (clock skew between us and them).
LOOKUP_MARGIN = dt.timedelta(minutes=10)


def _since(at: dt.datetime) -> Q:
    """Messages whose provider call (else last change) is at or before ``at``."""
    return Q(provider_called_at__lte=at) | Q(provider_called_at__isnull=True, updated_at__lte=at)


def messages_reconcile(
    *,
    now: dt.datetime,
    older_than: dt.timedelta = dt.timedelta(minutes=2),
    deadline: dt.timedelta = DEADLINE,
    batch: int = 100,
    message_ids: list[int] | None = None,
) -> dict[str, int]:
    """Settle up to ``batch`` ``unknown`` messages older than ``older_than`` (optionally only
    ``message_ids``) by asking their provider. Idempotent; each message is handled in its own
    transaction under a row lock (rows another reconciler holds are skipped).

    Returns counts: ``sent`` (found), ``failed`` (past the deadline, not found), ``waiting``
    (not found yet, or the provider could not be asked).
    """
    due = OutboundMessage.objects.filter(status=MessageStatus.UNKNOWN).filter(
        _since(now - older_than)
    )
    if message_ids is not None:
        due = due.filter(pk__in=message_ids)
    ids = list(due.order_by("updated_at", "pk").values_list("pk", flat=True)[:batch])
    counts = {"sent": 0, "failed": 0, "waiting": 0}
    for message_id in ids:
        counts[_reconcile_one(message_id, now=now, deadline=deadline)] += 1
    return counts


@transaction.atomic(durable=True)  # each message on its own, under its row lock
def _reconcile_one(message_id: int, *, now: dt.datetime, deadline: dt.timedelta) -> str:
    message = (
        OutboundMessage.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("practice")
        .filter(pk=message_id, status=MessageStatus.UNKNOWN)
        .first()
    )
    if message is None:
        return "waiting"  # settled meanwhile (a webhook) or locked by another reconciler
    practice = message.practice
    provider = provider_for(message.channel, practice)
    called_at = message.provider_called_at or message.updated_at
    outgoing = Outgoing(
        outbox_id=message.pk,
        practice_id=practice.pk,
        channel=message.channel,
        to=message.to,
        sender=practice.sms_from if message.channel == "sms" else practice.email_from,
        subject=message.subject,
        body=message.body,
    )
    # The same text to the same number can be another outbox message's: never claim its id.
    taken = frozenset(
        OutboundMessage.objects.filter(
            practice_id=practice.pk, channel=message.channel, to=message.to, body=message.body
        )
        .exclude(pk=message.pk)
        .exclude(provider_id="")
        .values_list("provider_id", flat=True)
    )
    lookup = getattr(provider, "lookup", None)
    try:
        found = (
            lookup(outgoing, sent_after=called_at - LOOKUP_MARGIN, exclude=taken)
            if lookup
            else None
        )
    except ProviderError as error:
        logger.warning("reconcile: message %s lookup failed (%s)", message.pk, error.code)
        return "waiting"
    if found is None:
        if called_at > now - deadline:
            return "waiting"
        message_transition(
            message, status=MessageStatus.FAILED, reason=NOT_ACCEPTED, at=now, source=SOURCE
        )
        return "failed"
    message_transition(
        message,
        status=MessageStatus.SENT,
        reason="found at the provider (reconciled)",
        at=now,
        source=SOURCE,
        fields={"provider": provider.name, "provider_id": found.provider_id, "sent_at": called_at},
    )
    later = PROVIDER_STATUSES.get(found.provider_status)
    if later is not None:
        # The webhook's event id for the same report, so a later callback counts once.
        message_transition(
            message,
            status=later,
            at=now,
            source=SOURCE,
            provider_event_id=f"{provider.name}:{found.provider_id}:{found.provider_status}",
        )
    return "sent"
