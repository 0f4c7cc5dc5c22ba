"""The outbox's answers to what the patients app announces (``patients.signals``)."""

from __future__ import annotations

from django.dispatch import receiver
from django.utils import timezone

from messaging.models import MessageStatus, OutboundMessage
from messaging.outbox.status import messages_transition
from patients.signals import opt_out_changed


@receiver(opt_out_changed, dispatch_uid="messaging.cancel_on_opt_out")
def cancel_on_opt_out(sender, *, practice, patient, channel, opted_out, **kwargs) -> None:
    """An opt-out cancels that channel's queued messages at once."""
    if not opted_out:
        return
    messages_transition(
        messages=OutboundMessage.objects.filter(
            practice=practice, patient=patient, channel=channel, status=MessageStatus.QUEUED
        ),
        status=MessageStatus.CANCELED,
        reason="patient opted out",
        at=timezone.now(),
        source="engine",
    )
