"""Services of the messaging app that staff call directly."""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from campaigns.render import render_message
from messaging.models import MessageEvent, MessageStatus, OutboundMessage
from messaging.outbox.send import message_send
from patients.models import Patient
from trackstat.models import Practice, User

STAFF_CLAIM = dt.timedelta(minutes=5)


def message_test_send(
    *,
    practice: Practice,
    user: User,
    channel: str,
    subject: str,
    body: str,
    patient: Patient | None = None,
) -> OutboundMessage:
    """Send a step to the staff member's own phone or email, now, marked as a test.

    Rendered for ``patient`` (the preview patient) or, without one, for the staff member's
    own name. Test messages stay out of reports and never count as a patient's messages.
    """
    to = user.phone if channel == "sms" else user.email
    if not to:
        raise ValidationError(
            {"channel": "Add your mobile phone on your profile page to get test texts."}
        )
    sample = patient or Patient(
        practice=practice,
        first_name=user.first_name or "Test",
        last_name=user.last_name or "Patient",
    )
    subject, body = render_message(
        channel=channel, subject=subject, body=body, patient=sample, practice=practice
    )
    return message_send_now(
        practice=practice,
        reason=f"test by {user.email}",
        channel=channel,
        to=to,
        subject=f"[Test] {subject}" if subject else "",
        body=body,
        is_test=True,
    )


def message_send_now(*, practice: Practice, reason: str, **fields) -> OutboundMessage:
    """A message staff send themselves (a test, an Inbox reply): into the outbox already
    claimed, then through the same send path as every message (re-check, provider,
    history). ``fields`` are the OutboundMessage's (channel, to, body, patient, …)."""
    now = timezone.now()
    with transaction.atomic():
        message = OutboundMessage.objects.create(
            practice=practice,
            status=MessageStatus.SENDING,
            scheduled_for=now,
            claimed_until=now + STAFF_CLAIM,
            attempts=1,
            **fields,
        )
        MessageEvent.objects.create(
            practice=practice,
            message=message,
            status=MessageStatus.SENDING,
            at=now,
            source="staff",
            reason=reason,
        )
    message_send(message_id=message.pk, now=now)
    message.refresh_from_db()
    return message
