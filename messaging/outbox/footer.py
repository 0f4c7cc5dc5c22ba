"""The "Reply STOP to opt out" footer of the first text a patient receives (DESIGN §7).

Decided when a text is sent, not when it is queued: a text that is then canceled, skipped or
expired never uses it up, and the one that actually goes out first carries it.
"""

from __future__ import annotations

from django.db.models import TextField, Value
from django.db.models.functions import Concat
from django.utils import timezone

from messaging.models import Channel, MessageStatus, OutboundMessage

STOP_FOOTER = "Reply STOP to opt out"

# Texts the provider accepted and that are not known to have failed on the way.
RECEIVED_STATUSES = [
    MessageStatus.SENT,
    MessageStatus.DELIVERED,
    MessageStatus.OPENED,
    MessageStatus.CLICKED,
]


def stop_footers_add(*, messages: list[OutboundMessage]) -> None:
    """End each text about to go to a patient who has received none yet with the STOP
    footer, in memory and in the outbox: one read and one write for the whole batch.

    Two first texts of one patient in one batch both carry it (either may fail); a test send
    goes to staff, not to the patient.
    """
    footer = f"\n{STOP_FOOTER}"
    texts = [
        message
        for message in messages
        if message.channel == Channel.SMS
        and message.patient_id is not None
        and not message.is_test
        and not message.body.endswith(footer)
    ]
    if not texts:
        return
    received = set(
        OutboundMessage.objects.filter(
            patient_id__in={message.patient_id for message in texts},
            channel=Channel.SMS,
            is_test=False,
            status__in=RECEIVED_STATUSES,
        )
        .order_by()
        .values_list("patient_id", flat=True)
        .distinct()
    )
    first = [message for message in texts if message.patient_id not in received]
    if not first:
        return
    # The same words end every one of them: one UPDATE (a message whose body the send path
    # rewrites as well is saved whole after this, footer included).
    OutboundMessage.objects.filter(pk__in=[message.pk for message in first]).update(
        body=Concat("body", Value(footer), output_field=TextField()), updated_at=timezone.now()
    )
    for message in first:
        message.body += footer


def stop_footer_keep(*, message: OutboundMessage, body_before: str) -> None:
    """A message whose body a pre-send re-check rewrote (a reminder re-rendered for its moved
    appointment) keeps the STOP footer an earlier attempt to send it gave it."""
    footer = f"\n{STOP_FOOTER}"
    if (
        message.body != body_before
        and body_before.endswith(footer)
        and not message.body.endswith(footer)
    ):
        message.body += footer
