"""A patient's reply to a reminder that asked (DESIGN §7).

Called from the inbound SMS path for a text that is not an opt-out, opt-in or HELP keyword
(those come first and always win), before it is left for staff. A text within 72 hours of the
latest text that asked one of the sender's patients is read (``classify``) as an answer about
that text's appointment:

- ``confirm`` / ``cancel`` / ``reschedule``: the appointment's confirmation becomes
  ``confirmed`` / ``cancel_requested`` / ``reschedule_requested`` (an
  ``appointment.confirmation_changed`` event tells the EMR), the campaigns app hears
  ``confirmation_answered`` (a ``confirmed`` goal is met; a request stops the later reminders
  about it), and the patient gets one acknowledgement in the practice's wording;
- unclear: nothing changes; the text waits in the Inbox, marked as about that appointment.

Either way the text stays in the patient's Inbox thread with the appointment and the answer,
so staff see it; an answer that was read is marked read (nothing for staff to do), an unclear
one is not.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import transaction

from messaging.confirmations.classify import Answer, classify_reply, is_opt_out_wording
from messaging.models import Channel, InboundMessage, OutboundMessage
from messaging.services import message_send_now
from messaging.signals import confirmation_answered
from patients.models import Appointment, Confirmation, Patient
from patients.services import appointment_confirmation_set
from trackstat.models import Practice

REPLY_WINDOW = dt.timedelta(hours=72)
CONFIRMATION_OF_ANSWER = {
    Answer.CONFIRM: Confirmation.CONFIRMED,
    Answer.CANCEL: Confirmation.CANCEL_REQUESTED,
    Answer.RESCHEDULE: Confirmation.RESCHEDULE_REQUESTED,
}
ACK_FIELD = {
    Answer.CONFIRM: "confirmation_ack_confirmed",
    Answer.CANCEL: "confirmation_ack_cancel",
    Answer.RESCHEDULE: "confirmation_ack_reschedule",
}
ACK_REASON = "acknowledgement of a confirmation reply"


@dataclass(frozen=True)
class ReplyReading:
    appointment: Appointment
    answer: Answer
    other_asked: bool  # another upcoming appointment was asked about in the window too


def appointment_when(appointment: Appointment, tz) -> tuple[str, str]:
    """("Tue Dec 8", "2:00 PM") in the practice's time zone."""
    start = appointment.start.astimezone(tz)
    hour = start.hour % 12 or 12
    return (
        f"{start:%a %b} {start.day}",
        f"{hour}:{start:%M} {'AM' if start.hour < 12 else 'PM'}",
    )


def reply_read(
    *, practice: Practice, patients: list[Patient], body: str, now: dt.datetime
) -> ReplyReading | None:
    """The answer in ``body`` and the appointment it is about, or None when no text to these
    patients asked in the last 72 hours (or the text is opt-out wording)."""
    if not patients or is_opt_out_wording(body):
        return None
    asked = list(
        OutboundMessage.objects.filter(
            practice=practice,
            patient__in=patients,
            confirmation_appointment__isnull=False,
            sent_at__gte=now - REPLY_WINDOW,
            sent_at__lte=now,
        )
        .order_by("-sent_at", "-id")
        .values_list("confirmation_appointment_id", flat=True)
    )
    if not asked:
        return None
    appointment = Appointment.objects.filter(practice=practice, pk=asked[0]).first()
    if appointment is None:
        return None
    other_asked = Appointment.objects.filter(
        practice=practice, pk__in=set(asked) - {appointment.pk}, start__gt=now
    ).exists()
    return ReplyReading(
        appointment=appointment, answer=classify_reply(body), other_asked=other_asked
    )


def acknowledgement_text(*, practice: Practice, reading: ReplyReading) -> str:
    """The one short reply to an answer, in the practice's wording."""
    date, time = appointment_when(reading.appointment, practice.tz)
    text = (
        practice.confirmation_wording(ACK_FIELD[reading.answer])
        .replace("{{AppointmentDate}}", date)
        .replace("{{AppointmentTime}}", time)
    )
    if reading.other_asked:
        # Two upcoming visits were asked about: the answer is for the latest request's.
        text += f" (This answer is for your {date} {time} visit only.)"
    return text


def confirmation_reply_apply(
    *,
    practice: Practice,
    inbound: InboundMessage,
    patients: list[Patient],
    now: dt.datetime,
) -> ReplyReading | None:
    """Read an inbound text (already stored, in its transaction) as an answer if it is one;
    apply it and schedule the acknowledgement for after the commit."""
    reading = reply_read(practice=practice, patients=patients, body=inbound.body, now=now)
    if reading is None:
        return None
    inbound.confirmation_appointment = reading.appointment
    inbound.confirmation_answer = reading.answer.value
    fields = ["confirmation_appointment", "confirmation_answer"]
    if reading.answer == Answer.UNCLEAR:
        inbound.save(update_fields=fields)
        return reading
    inbound.read_at = now
    inbound.save(update_fields=[*fields, "read_at"])
    changed = appointment_confirmation_set(
        practice=practice,
        appointment=reading.appointment,
        confirmation=CONFIRMATION_OF_ANSWER[reading.answer],
        at=now,
    )
    if not changed:  # the same answer again ("yes" … "Yes!!"): acknowledged once
        return reading
    confirmation_answered.send(
        sender=InboundMessage,
        practice=practice,
        appointment=reading.appointment,
        answer=reading.answer.value,
        at=now,
    )
    patient = next((p for p in patients if p.pk == reading.appointment.patient_id), patients[0])
    text = acknowledgement_text(practice=practice, reading=reading)
    to = inbound.from_number
    # After the answer committed; a failure to send it is logged and never undoes the answer.
    transaction.on_commit(
        lambda: message_send_now(
            practice=practice,
            reason=ACK_REASON,
            channel=Channel.SMS,
            to=to,
            body=text,
            patient=patient,
        ),
        robust=True,
    )
    return reading
