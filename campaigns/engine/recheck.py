"""A campaign's own re-check of its messages just before the outbox sends them (DESIGN §6),
registered with the outbox at app start (``campaigns.apps``).

A campaign message goes out only if its step is still in the campaign (a message is sent as
it was made, whatever edits its step had since, but not once its step was removed), its
enrollment is still active (its goal not met), its campaign still on, the patient still
matches the campaign's status filter and is not deceased, and the triggering appointment is
still in the state that triggered it: a missed-appointment text is canceled once the patient
is checked in; a reminder is canceled with its appointment, or follows it when it moved
(re-rendered from its own templates, and rescheduled for its new day). The outbox checks the
rest for every message (expiry, the address on file, quiet hours).
"""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, transaction

from campaigns.audience.triggers import reminder_occurrence_key
from campaigns.content.render import render_message
from campaigns.engine.goals import confirmed_q, enrollments_exit, future_appointment_q
from campaigns.engine.steps import DECEASED
from campaigns.experiments.arms import HELD_OUT, HOLDOUT
from campaigns.language.spec import DEFAULT_SCHEDULE
from campaigns.models import Enrollment, EnrollmentState, MessageStep
from campaigns.schedule import run_time
from messaging.links import links_track, unsubscribe_footer_add
from messaging.models import MessageStatus, OutboundMessage
from messaging.outbox.checks import Hold, MessageCheck, PreSendCheck
from messaging.unsubscribe import unsubscribe_url_for
from patients.models import (
    CANCELLED_STATUSES,
    UPCOMING_STATUSES,
    VISIT_STATUSES,
    Appointment,
    PatientStatus,
)

STEP_REMOVED = "step removed from the campaign"


def campaign_messages_check(messages: list[OutboundMessage], now: dt.datetime) -> MessageCheck:
    """The re-check of a batch of claimed messages: the steps their campaigns have now are
    read once for the batch; each campaign message is then judged on its own (None: it may
    go out)."""
    steps = _steps_of(messages)

    def check(message: OutboundMessage) -> Hold | None:
        enrollment = message.enrollment
        if enrollment is None:
            return None  # not a campaign's (a test send, an Inbox reply)
        if message.campaign_id is not None and (
            (message.campaign_id, message.step_position) not in steps
        ):
            # Staff removed the step (shortened the campaign) after it was made.
            return Hold(MessageStatus.SKIPPED, STEP_REMOVED)
        return _enrollment_recheck(message, enrollment, now)

    return check


# The patient's provider (a merge field) and the enrollment's campaign and appointment: joined
# into the outbox's locking read of the batch.
CAMPAIGN_RECHECK = PreSendCheck(
    name="campaigns",
    batch=campaign_messages_check,
    related=(
        "patient__primary_provider",
        "enrollment__campaign",
        "enrollment__appointment__provider",
    ),
)


def _steps_of(messages: list[OutboundMessage]) -> set[tuple[int, int]]:
    """(campaign id, position) of every step the batch's campaigns have now (one query)."""
    campaign_ids = {m.campaign_id for m in messages if m.enrollment_id and m.campaign_id}
    if not campaign_ids:
        return set()
    return set(
        MessageStep.objects.filter(campaign_id__in=campaign_ids).values_list(
            "campaign_id", "position"
        )
    )


def _enrollment_recheck(
    message: OutboundMessage, enrollment: Enrollment, now: dt.datetime
) -> Hold | None:
    campaign = enrollment.campaign
    if enrollment.arm == HOLDOUT:
        # The control group is sent nothing, whatever made this message.
        return Hold(MessageStatus.CANCELED, HELD_OUT)
    if message.patient.status == PatientStatus.DECEASED:
        return Hold(MessageStatus.SKIPPED, DECEASED)
    if enrollment.state == EnrollmentState.EXITED:
        return Hold(MessageStatus.CANCELED, enrollment.exit_reason.replace("_", " "))
    if not campaign.enabled:
        return Hold(MessageStatus.CANCELED, "campaign turned off")
    goal = campaign.goal or {}
    if goal.get("type") == "confirmed" and (
        Enrollment.objects.filter(pk=enrollment.pk).filter(confirmed_q()).exists()
    ):
        enrollments_exit(enrollment_ids=[enrollment.pk], reason="goal_met", now=now)
        return Hold(MessageStatus.CANCELED, "goal met")
    if goal.get("type") == "future_appointment" and (
        Enrollment.objects.filter(pk=enrollment.pk).filter(future_appointment_q(goal, now)).exists()
    ):
        enrollments_exit(enrollment_ids=[enrollment.pk], reason="goal_met", now=now)
        return Hold(MessageStatus.CANCELED, "goal met")
    status = (campaign.filters or {}).get("status")
    patient_active = message.patient.status == PatientStatus.ACTIVE
    if (status == "active" and not patient_active) or (status == "inactive" and patient_active):
        return Hold(MessageStatus.CANCELED, "patient status changed")
    return _appointment_recheck(message, enrollment, now)


def _reminder_follows(enrollment: Enrollment, appointment: Appointment) -> bool:
    """A reminder's occurrence is its appointment at its start (DESIGN §5.1). A reminder that
    follows a moved appointment carries its enrollment to the new start, so that the run
    before the new date does not remind of it again; False when another enrollment already
    has the new start (it reminds of it, and this one stops)."""
    key = reminder_occurrence_key(appointment.pk, appointment.start)
    if enrollment.occurrence_key == key:
        return True
    try:
        with transaction.atomic():
            Enrollment.objects.filter(pk=enrollment.pk).update(occurrence_key=key)
    except IntegrityError:  # the unique (campaign, patient, occurrence key)
        return False
    enrollment.occurrence_key = key
    return True


def _appointment_recheck(
    message: OutboundMessage, enrollment: Enrollment, now: dt.datetime
) -> Hold | None:
    """The triggering appointment must still be in the state that triggered the message."""
    campaign, appointment = enrollment.campaign, enrollment.appointment
    trigger = campaign.trigger or {}
    kind = trigger.get("type")
    if kind not in ("missed_appointment", "scheduled_appointment"):
        return None
    if appointment is None:
        return Hold(MessageStatus.CANCELED, "appointment deleted")
    practice = message.practice  # the campaign's (joined already)
    tz = practice.tz
    if kind == "missed_appointment":
        if appointment.status in VISIT_STATUSES:
            return Hold(MessageStatus.CANCELED, "patient checked in")
        if appointment.status in CANCELLED_STATUSES:
            return Hold(MessageStatus.CANCELED, f"appointment {appointment.status}")
        # Moved: no longer missed, or to another day than the one it was missed on (when the
        # patient entered); a later step on a later day is still about that day's miss.
        missed_at = appointment.start + dt.timedelta(minutes=trigger["minutes_after"])
        missed_day = enrollment.entered_at.astimezone(tz).date()
        if missed_at > now or appointment.local_date != missed_day:
            return Hold(MessageStatus.CANCELED, "appointment moved")
        return None
    # A reminder: canceled with its appointment, or following it when it moved.
    if appointment.status not in UPCOMING_STATUSES:
        return Hold(MessageStatus.CANCELED, f"appointment {appointment.status}")
    if appointment.start <= now:
        return Hold(MessageStatus.CANCELED, "appointment already started")
    if not _reminder_follows(enrollment, appointment):
        return Hold(MessageStatus.CANCELED, "appointment moved")
    # Re-render: the date and time follow the appointment if it moved (the outbox keeps the
    # STOP footer the message may already carry).
    templates = _templates(message, campaign)
    if templates is None:
        return Hold(MessageStatus.SKIPPED, STEP_REMOVED)
    unsubscribe = unsubscribe_url_for(message) if message.channel == "email" else ""
    subject, body = render_message(
        channel=message.channel,
        subject=templates[0],
        body=templates[1],
        patient=message.patient,
        practice=practice,
        appointment=appointment,
        links={"UnsubscribeLink": unsubscribe} if unsubscribe else None,
    )
    if unsubscribe:
        body = unsubscribe_footer_add(body=body, url=unsubscribe)
    message.subject = subject
    message.body = links_track(message=message, body=body, channel=message.channel)
    if trigger.get("when") == "days_before":
        send_day = appointment.local_date - dt.timedelta(days=trigger["days"])
        if send_day > now.astimezone(tz).date():
            due = run_time(campaign.schedule or DEFAULT_SCHEDULE, send_day, tz)
            return Hold(MessageStatus.QUEUED, "appointment moved: reminder rescheduled", until=due)
    return None


def _templates(message: OutboundMessage, campaign) -> tuple[str, str] | None:
    """The (subject, body) templates ``message`` was made from: its own copy, whatever edits
    the campaign's steps had since; for a message made before messages kept them, its
    step's, if the step is still there (None if not)."""
    if message.body_template:
        return message.subject_template, message.body_template
    step = campaign.steps.filter(position=message.step_position).first()
    return (step.subject, step.body) if step is not None else None
