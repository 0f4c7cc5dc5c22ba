"""Step 3 of a tick: turn due steps of enrollments into outbound messages.

Enrollments whose ``next_step_at`` has come are claimed in batches with SKIP LOCKED; each
gets exactly one message for its next step (unique per enrollment and step), rendered for the
patient, or recorded as skipped with its reason. The batch is a fixed number of queries
however many patients it holds.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction

from campaigns.models import Channel, Enrollment, EnrollmentState
from campaigns.render import render_message
from campaigns.spec import DEFAULT_SCHEDULE, is_continuous
from campaigns.timing import end_of_local_day, step_due
from messaging.links import (
    links_track,
    unsubscribe_footer_add,
    unsubscribe_token_new,
    unsubscribe_url,
)
from messaging.models import (
    MessageEvent,
    MessageStatus,
    OutboundMessage,
    TrackedLink,
    UnsubscribeToken,
)

BATCH = 500
STOP_FOOTER = "Reply STOP to opt out"
# Messages that count as "a text the patient got" for the first-SMS footer.
NOT_RECEIVED = [MessageStatus.SKIPPED, MessageStatus.CANCELED, MessageStatus.EXPIRED]


def address_problem(patient, channel: str) -> tuple[str, str]:
    """(address, "") when the patient can get ``channel``; ("", reason) when not."""
    if channel == Channel.SMS:
        if patient.sms_opt_out:
            return "", "opted out of text messages"
        return (patient.phone, "") if patient.phone else ("", "no mobile phone")
    if patient.email_opt_out:
        return "", "opted out of email"
    return (patient.email, "") if patient.email else ("", "no email address")


def steps_materialize(*, now: dt.datetime) -> tuple[int, int]:
    """Materialize every due step; return (messages queued, messages skipped)."""
    queued = skipped = 0
    while True:
        batch_queued, batch_skipped, size = _batch(now)
        queued += batch_queued
        skipped += batch_skipped
        if size < BATCH:
            return queued, skipped


@transaction.atomic
def _batch(now: dt.datetime) -> tuple[int, int, int]:
    enrollments = list(
        Enrollment.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(state=EnrollmentState.ACTIVE, next_step_at__lte=now, campaign__enabled=True)
        .select_related(
            "campaign",
            "campaign__practice",
            "patient",
            "patient__primary_provider",
            "appointment",
            "appointment__provider",
        )
        .prefetch_related("campaign__steps")
        .order_by("next_step_at", "id")[:BATCH]
    )
    if not enrollments:
        return 0, 0, 0
    texted = set(
        OutboundMessage.objects.filter(
            patient_id__in={e.patient_id for e in enrollments}, channel=Channel.SMS
        )
        .exclude(status__in=NOT_RECEIVED)
        .values_list("patient_id", flat=True)
    )
    messages: list[OutboundMessage] = []
    # Link rows of the batch, saved after the messages (their tokens need no message id).
    tracked_links: list[TrackedLink] = []
    unsubscribe_tokens: list[UnsubscribeToken] = []
    addresses_this_run: set[tuple[int, str, str]] = set()
    for enrollment in enrollments:
        campaign, patient = enrollment.campaign, enrollment.patient
        steps = list(campaign.steps.all())
        position = enrollment.steps_done + 1
        if position > len(steps):  # the campaign lost steps since: nothing left to send
            enrollment.state, enrollment.next_step_at = EnrollmentState.COMPLETED, None
            continue
        step = steps[position - 1]
        due = enrollment.next_step_at
        to, reason = address_problem(patient, step.channel)
        if to and position == 1:
            # Families share phones and emails: one message per address per run.
            key = (campaign.pk, step.channel, to)
            if key in addresses_this_run:
                to, reason = "", "another patient at this address got this message"
            addresses_this_run.add(key)
        # Every email that goes out carries its own unsubscribe link.
        unsubscribe_token = unsubscribe_token_new() if to and step.channel == Channel.EMAIL else ""
        links = (
            {"UnsubscribeLink": unsubscribe_url(unsubscribe_token)} if unsubscribe_token else None
        )
        subject, body = render_message(
            channel=step.channel,
            subject=step.subject,
            body=step.body,
            patient=patient,
            practice=campaign.practice,
            appointment=enrollment.appointment,
            links=links,
        )
        if links:
            body = unsubscribe_footer_add(body=body, url=links["UnsubscribeLink"])
        if to and step.channel == Channel.SMS and patient.pk not in texted:
            body = f"{body}\n{STOP_FOOTER}"
            texted.add(patient.pk)
        message = OutboundMessage(
            practice_id=enrollment.practice_id,
            enrollment=enrollment,
            campaign=campaign,
            step_position=position,
            patient=patient,
            channel=step.channel,
            to=to,
            subject=subject,
            body=body,
            status=MessageStatus.QUEUED if to else MessageStatus.SKIPPED,
            status_reason=reason,
            scheduled_for=due,
            expires_at=end_of_local_day(due, campaign.practice.tz)
            if is_continuous(campaign.trigger or {})
            else None,
        )
        if to:
            message.body = links_track(
                message=message, body=body, channel=step.channel, pending=tracked_links
            )
        if unsubscribe_token:
            unsubscribe_tokens.append(
                UnsubscribeToken(
                    practice_id=enrollment.practice_id, message=message, token=unsubscribe_token
                )
            )
        messages.append(message)
        enrollment.steps_done = position
        if position < len(steps):
            following = steps[position]
            enrollment.next_step_at = step_due(
                previous=due,
                value=following.delay_value,
                unit=following.delay_unit,
                schedule=campaign.schedule or DEFAULT_SCHEDULE,
                tz=campaign.practice.tz,
            )
        else:
            enrollment.state, enrollment.next_step_at = EnrollmentState.COMPLETED, None
    OutboundMessage.objects.bulk_create(messages, batch_size=BATCH)
    TrackedLink.objects.bulk_create(tracked_links, batch_size=BATCH)
    UnsubscribeToken.objects.bulk_create(unsubscribe_tokens, batch_size=BATCH)
    MessageEvent.objects.bulk_create(
        MessageEvent(
            practice_id=m.practice_id,
            message=m,
            status=m.status,
            reason=m.status_reason,
            at=now,
            source="engine",
        )
        for m in messages
    )
    Enrollment.objects.bulk_update(enrollments, ["steps_done", "next_step_at", "state"])
    skipped = sum(m.status == MessageStatus.SKIPPED for m in messages)
    return len(messages) - skipped, skipped, len(enrollments)
