"""Sending one claimed message: re-check it against live data, then hand it to the provider.

Immediately before each send (DESIGN §6) the message is re-checked: the enrollment still
active (goal not met), the campaign still on, the patient not opted out and still reachable,
the triggering appointment still in the state that triggered it (a missed-appointment text
is canceled once the patient is checked in; a reminder follows a moved appointment or is
canceled with it), quiet hours, and the campaign's status filter.

Exactly once: a message is sent only from ``sending`` and only if the provider was never
called for it (``provider_called_at``), checked under a row lock. A duplicate task, a retried
task or a redelivered Celery message finds it already handled and does nothing. A worker that
dies after calling the provider leaves it ``sending`` with ``provider_called_at`` set, and the
dispatcher turns it ``unknown`` for reconciliation: never resent blindly.

One message never takes its batch down with it: each is re-checked in its own savepoint, and
an unexpected error moves only that message (back to the queue a few times, then failed).
What a provider accepted is recorded whatever happens later in the batch. A message is
self-contained: it is sent as it was made (a reminder re-rendered from its own templates when
its appointment moves), and skipped if staff removed its step from the campaign since.
"""

from __future__ import annotations

import datetime as dt
import logging
import traceback
from pathlib import Path

from django.db import IntegrityError, connection, transaction
from django.db.models import Case, Value, When
from django.utils import timezone

from campaigns.engine.goals import enrollments_exit, future_appointment_q
from campaigns.engine.steps import DECEASED
from campaigns.models import Enrollment, EnrollmentState, MessageStep
from campaigns.render import render_message
from campaigns.schedule import run_time
from campaigns.spec import DEFAULT_SCHEDULE
from campaigns.triggers import reminder_occurrence_key
from messaging.links import (
    links_track,
    unsubscribe_footer_add,
    unsubscribe_url,
    unsubscribe_url_for,
)
from messaging.models import MessageEvent, MessageStatus, OutboundMessage, UnsubscribeToken
from messaging.outbox.addresses import address_problem
from messaging.outbox.footer import STOP_FOOTER, stop_footers_add
from messaging.outbox.status import may_move, message_transition
from messaging.outbox.window import WINDOWED_CHANNELS, next_sending_time
from messaging.providers import provider_for
from messaging.providers.base import Accepted, Outgoing, Provider, ProviderError
from patients.models import (
    CANCELLED_STATUSES,
    UPCOMING_STATUSES,
    VISIT_STATUSES,
    Appointment,
    OptOutSource,
    PatientStatus,
)
from patients.services import patient_opt_out_set

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
STEP_REMOVED = "step removed from the campaign"


def message_send(*, message_id: int, now: dt.datetime | None = None) -> str:
    """Send one claimed message (idempotent); return its status afterwards."""
    statuses = messages_send(message_ids=[message_id], now=now)
    if message_id not in statuses:
        raise OutboundMessage.DoesNotExist(f"No outbound message {message_id}.")
    return statuses[message_id]


def messages_send(*, message_ids: list[int], now: dt.datetime | None = None) -> dict[int, str]:
    """Send claimed messages (idempotent); return the status of each afterwards.

    One transaction locks and re-checks them all; then each in turn is marked
    (``provider_called_at``, a compare-and-set committed on its own) and handed to its
    provider; one transaction records the accepted ones ``sent``. Each message is judged on
    its own: a stop or a provider error moves only that one. Marking each message just
    before its own call keeps a worker lost mid-batch harmless: the messages it had not
    called yet are unmarked, so the dispatcher puts them back in the queue; only the ones it
    may have sent are reconciled.
    """
    now = now or timezone.now()
    statuses: dict[int, str] = {}
    outgoing: list[OutboundMessage] = []
    with transaction.atomic():
        # Locked in id order, so two batches sharing messages (a duplicate task) never
        # deadlock: the second waits, then finds them handled.
        messages = list(
            OutboundMessage.objects.select_for_update(of=("self",))
            .select_related(
                "practice",
                "patient",
                "patient__primary_provider",
                "enrollment",
                "enrollment__campaign",
                "enrollment__appointment",
                "enrollment__appointment__provider",
            )
            .filter(pk__in=message_ids)
            .order_by("pk")
        )
        steps = _steps_of(messages)
        for message in messages:
            statuses[message.pk] = message.status
            if message.status != MessageStatus.SENDING or message.provider_called_at is not None:
                continue  # already handled: a duplicate or late delivery
            if _prepare_stops(message, now, steps):
                statuses[message.pk] = message.status
                continue
            outgoing.append(message)
        # After each message's re-check has saved what it rewrote: the footer is added on top.
        stop_footers_add(messages=outgoing)
    if outgoing:
        for message_id, status in _deliver(outgoing, now).items():
            if status is None:
                del statuses[message_id]  # its row is gone (the patient was deleted meanwhile)
            else:
                statuses[message_id] = status
    return statuses


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


def _prepare_stops(message: OutboundMessage, now: dt.datetime, steps: set[tuple[int, int]]) -> bool:
    """Re-check one locked message of the batch and save what the re-check rewrote (its
    address, a re-rendered reminder); True if it must not go out now (its status has moved).

    In its own savepoint: an unexpected error rolls back this message's re-check only, and
    the message is moved on its own (``_prepare_failed``); the batch goes on.
    """
    before = (message.to, message.subject, message.body)
    try:
        with transaction.atomic():
            if (
                message.enrollment_id is not None
                and message.campaign_id is not None
                and (message.campaign_id, message.step_position) not in steps
            ):
                # Staff removed the step (shortened the campaign) after it was made.
                return _stop(message, MessageStatus.SKIPPED, STEP_REMOVED, now)
            if _recheck_stops(message, now):
                return True
            if (message.to, message.subject, message.body) != before:
                message.save(update_fields=["to", "subject", "body", "updated_at"])
            return False
    except Exception as error:
        message.status = _prepare_failed(message.pk, error, now) or message.status
        return True


def _where(error: BaseException) -> str:
    """Where an error was raised (file, line, function): safe to log, unlike its message,
    which may quote patient data."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "?"
    frame = frames[-1]
    return f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}"


def _prepare_failed(message_id: int, error: Exception, now: dt.datetime) -> str | None:
    """An unexpected error while preparing a message, before any provider call: it goes back
    to the queue after a backoff (1, 2, 4, 8 minutes), and fails once it has been claimed
    ``MAX_ATTEMPTS`` times. Only the error's type is logged and recorded, never its message.
    Returns the message's status (None if its row is gone)."""
    kind = type(error).__name__
    logger.error(
        "send: message %s could not be prepared (%s at %s)", message_id, kind, _where(error)
    )
    with transaction.atomic():
        message = (
            OutboundMessage.objects.select_for_update(of=("self",)).filter(pk=message_id).first()
        )
        if message is None:
            return None
        if message.attempts < MAX_ATTEMPTS:
            message_transition(
                message,
                status=MessageStatus.QUEUED,
                reason=f"retry after an internal error ({kind})",
                at=now,
                source="engine",
                fields={
                    "scheduled_for": now + dt.timedelta(minutes=2 ** max(message.attempts - 1, 0)),
                    "claimed_until": None,
                },
            )
        else:
            message_transition(
                message,
                status=MessageStatus.FAILED,
                reason=f"could not be prepared for sending ({kind})",
                at=now,
                source="engine",
            )
    return message.status


def _provider_called_mark(message_id: int, now: dt.datetime) -> bool:
    """The exactly-once mark, set just before the provider call: of two tasks holding this
    message, one sets it, the other finds it set (or the message moved) and leaves it alone.

    It must be committed before the provider is called (a worker lost after the call must
    leave it set, and a concurrent task must see it): it runs in autocommit, and refuses to
    run inside an outer transaction.
    """
    if connection.in_atomic_block:
        _refuse_inside_a_transaction()
    return bool(
        OutboundMessage.objects.filter(
            pk=message_id, status=MessageStatus.SENDING, provider_called_at__isnull=True
        ).update(provider_called_at=now, updated_at=timezone.now())
    )


def _refuse_inside_a_transaction() -> None:
    """Raise inside a transaction, unless it is a test case's own (Django's rule for durable
    atomic blocks, which tests wrap in a transaction of their own)."""
    try:
        with transaction.atomic(durable=True):
            pass
    except RuntimeError as error:
        raise RuntimeError(
            "The provider-called mark must commit on its own, before the provider call: "
            "send messages outside any transaction."
        ) from error


def _deliver(messages: list[OutboundMessage], now: dt.datetime) -> dict[int, str | None]:
    """Hand each message to its provider; return their statuses (None: the row is gone)."""
    statuses: dict[int, str | None] = {}
    tokens = dict(
        UnsubscribeToken.objects.filter(
            message__in=[m for m in messages if m.channel == "email" and m.patient_id]
        ).values_list("message_id", "token")
    )
    providers: dict[tuple[str, int], Provider] = {}
    accepted: list[tuple[OutboundMessage, Provider, Accepted]] = []
    try:
        for message in messages:
            practice = message.practice
            try:
                key = (message.channel, practice.pk)
                if key not in providers:
                    providers[key] = provider_for(message.channel, practice)
                provider = providers[key]
                if message.channel != "email":
                    unsubscribe = ""
                elif message.pk in tokens:
                    unsubscribe = unsubscribe_url(tokens[message.pk])
                else:
                    unsubscribe = unsubscribe_url_for(message)  # made now, or "" for a test
                outgoing = Outgoing(
                    outbox_id=message.pk,
                    practice_id=practice.pk,
                    channel=message.channel,
                    to=message.to,
                    sender=practice.sms_from if message.channel == "sms" else practice.email_from,
                    subject=message.subject,
                    body=message.body,
                    unsubscribe_url=unsubscribe,
                )
            except Exception as error:  # not called: safe to queue again (a few times)
                statuses[message.pk] = _prepare_failed(message.pk, error, now)
                continue
            if not _provider_called_mark(message.pk, now):
                current = (
                    OutboundMessage.objects.filter(pk=message.pk)
                    .values_list("status", flat=True)
                    .first()
                )
                statuses[message.pk] = current
                continue
            message.provider_called_at = now
            try:
                accepted.append((message, provider, provider.send(outgoing)))
            except ProviderError as error:
                statuses[message.pk] = _failed(message.pk, error, now)
            except Exception as error:
                # The provider may have taken it: reconciled, never sent again blindly.
                logger.error(
                    "send: provider call for message %s raised %s at %s",
                    message.pk,
                    type(error).__name__,
                    _where(error),
                )
                unanswered = ProviderError("unexpected_error", ambiguous=True)
                statuses[message.pk] = _failed(message.pk, unanswered, now)
    finally:
        # What the provider accepted is recorded whatever happened after (an error, the
        # worker stopping): an accepted message must never end unknown, then failed.
        if accepted:
            statuses.update(_sent_record(accepted, now))
    return statuses


def _sent_record(
    accepted: list[tuple[OutboundMessage, Provider, Accepted]], now: dt.datetime
) -> dict[int, str | None]:
    """Record the accepted messages ``sent``, set-wise: one locking read of their current
    status (a webhook may already have moved one forward: a status only moves forward), one
    UPDATE and one insert of events. A message whose row is gone gets None."""
    statuses: dict[int, str | None] = {}
    with transaction.atomic():
        current = dict(
            OutboundMessage.objects.select_for_update()
            .filter(pk__in=[message.pk for message, _, _ in accepted])
            .order_by("pk")
            .values_list("pk", "status")
        )
        moved: list[tuple[OutboundMessage, Provider, Accepted]] = []
        updated_at = timezone.now()
        for message, provider, answer in accepted:
            if message.pk not in current:
                statuses[message.pk] = None  # its row is gone (the patient was deleted)
                continue
            message.status = current[message.pk]
            statuses[message.pk] = message.status
            if not may_move(message.status, MessageStatus.SENT):
                continue
            message.status = statuses[message.pk] = MessageStatus.SENT
            message.status_reason = ""
            message.report_pending = True
            message.provider = provider.name
            message.provider_id = answer.provider_id
            message.sent_at = now
            message.updated_at = updated_at
            moved.append((message, provider, answer))
        # One UPDATE per provider; only the provider id differs from message to message.
        by_provider: dict[str, list[OutboundMessage]] = {}
        for message, provider, _ in moved:
            by_provider.setdefault(provider.name, []).append(message)
        for name, messages in by_provider.items():
            OutboundMessage.objects.filter(pk__in=[m.pk for m in messages]).update(
                status=MessageStatus.SENT,
                status_reason="",
                report_pending=True,
                provider=name,
                provider_id=Case(*(When(pk=m.pk, then=Value(m.provider_id)) for m in messages)),
                sent_at=now,
                updated_at=updated_at,
            )
        MessageEvent.objects.bulk_create(
            MessageEvent(
                practice_id=message.practice_id,
                message=message,
                status=MessageStatus.SENT,
                reason="",
                at=now,
                source=provider.name,
            )
            for message, provider, _ in moved
        )
    # After the record has committed: nothing here can undo it.
    with transaction.atomic():
        for message, provider, answer in moved:
            for status, event_id in getattr(provider, "simulated_events", lambda _a: [])(answer):
                message_transition(
                    message, status=status, at=now, source=provider.name, provider_event_id=event_id
                )
            statuses[message.pk] = message.status
    return statuses


def _failed(message_id: int, error: ProviderError, now: dt.datetime) -> str | None:
    """Record a provider error; return the message's status (None if its row is gone)."""
    with transaction.atomic():
        message = (
            OutboundMessage.objects.select_for_update(of=("self",))
            .select_related("patient", "practice")
            .filter(pk=message_id)
            .first()
        )
        if message is None:
            return None  # the row is gone (the patient was deleted meanwhile)
        if error.retryable and message.attempts < MAX_ATTEMPTS:
            # Not accepted: safe to send again, after a backoff (1, 2, 4, 8 minutes).
            backoff = dt.timedelta(minutes=2 ** (message.attempts - 1))
            message_transition(
                message,
                status=MessageStatus.QUEUED,
                reason=f"retry after provider error {error.code}",
                at=now,
                source="engine",
                fields={"scheduled_for": now + backoff, "provider_called_at": None},
            )
        elif error.ambiguous:
            message_transition(
                message,
                status=MessageStatus.UNKNOWN,
                reason=f"provider did not answer ({error.code})",
                at=now,
                source="engine",
                fields={"error_code": error.code},
            )
        else:
            message_transition(
                message,
                status=MessageStatus.FAILED,
                reason=f"provider error {error.code}",
                at=now,
                source="engine",
                fields={"error_code": error.code},
            )
            if error.opted_out and message.patient is not None:
                patient_opt_out_set(
                    practice=message.practice,
                    patient=message.patient,
                    channel=message.channel,
                    opted_out=True,
                    source=OptOutSource.PROVIDER,
                    actor="provider",
                )
    return message.status


def _stop(message: OutboundMessage, status: str, reason: str, now: dt.datetime) -> bool:
    message_transition(message, status=status, reason=reason, at=now, source="engine")
    return True


def _recheck_stops(message: OutboundMessage, now: dt.datetime) -> bool:
    """Re-check a claimed message against live data; True if it must not go out now (its
    status has then been moved: canceled, skipped, expired or back to queued)."""
    if message.expires_at and message.expires_at <= now:
        return _stop(message, MessageStatus.EXPIRED, "not sent on its day", now)
    if message.is_test:
        return False  # a staff member's own test: sent at once, whatever the hour
    enrollment = message.enrollment
    if enrollment is not None:
        campaign = enrollment.campaign
        if message.patient.status == PatientStatus.DECEASED:
            return _stop(message, MessageStatus.SKIPPED, DECEASED, now)
        if enrollment.state == EnrollmentState.EXITED:
            return _stop(
                message, MessageStatus.CANCELED, enrollment.exit_reason.replace("_", " "), now
            )
        if not campaign.enabled:
            return _stop(message, MessageStatus.CANCELED, "campaign turned off", now)
        goal = campaign.goal or {}
        if goal.get("type") == "future_appointment" and (
            Enrollment.objects.filter(pk=enrollment.pk)
            .filter(future_appointment_q(goal, now))
            .exists()
        ):
            enrollments_exit(enrollment_ids=[enrollment.pk], reason="goal_met", now=now)
            return _stop(message, MessageStatus.CANCELED, "goal met", now)
        status = (campaign.filters or {}).get("status")
        patient_active = message.patient.status == PatientStatus.ACTIVE
        if (status == "active" and not patient_active) or (status == "inactive" and patient_active):
            return _stop(message, MessageStatus.CANCELED, "patient status changed", now)
        stop = _appointment_recheck(message, enrollment, now)
        if stop:
            return True
    if message.patient is not None:
        to, reason = address_problem(message.patient, message.channel)
        if not to:
            return _stop(message, MessageStatus.SKIPPED, reason, now)
        message.to = to  # the number or address on file now
    if message.channel in WINDOWED_CHANNELS:  # texts and email alike (DESIGN §5.6)
        practice = message.practice
        opens = next_sending_time(
            now,
            start=practice.sending_window_start,
            end=practice.sending_window_end,
            tz=practice.tz,
        )
        if opens > now:
            message_transition(
                message,
                status=MessageStatus.QUEUED,
                reason="waiting for the sending window",
                at=now,
                source="engine",
                fields={"scheduled_for": opens, "claimed_until": None},
            )
            return True
    return False


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
) -> bool:
    """The triggering appointment must still be in the state that triggered the message."""
    campaign, appointment = enrollment.campaign, enrollment.appointment
    trigger = campaign.trigger or {}
    kind = trigger.get("type")
    if kind not in ("missed_appointment", "scheduled_appointment"):
        return False
    if appointment is None:
        return _stop(message, MessageStatus.CANCELED, "appointment deleted", now)
    tz = campaign.practice.tz
    if kind == "missed_appointment":
        if appointment.status in VISIT_STATUSES:
            return _stop(message, MessageStatus.CANCELED, "patient checked in", now)
        if appointment.status in CANCELLED_STATUSES:
            return _stop(message, MessageStatus.CANCELED, f"appointment {appointment.status}", now)
        # Moved: no longer missed, or to another day than the one it was missed on (when the
        # patient entered); a later step on a later day is still about that day's miss.
        missed_at = appointment.start + dt.timedelta(minutes=trigger["minutes_after"])
        missed_day = enrollment.entered_at.astimezone(tz).date()
        if missed_at > now or appointment.local_date != missed_day:
            return _stop(message, MessageStatus.CANCELED, "appointment moved", now)
        return False
    # A reminder: canceled with its appointment, or following it when it moved.
    if appointment.status not in UPCOMING_STATUSES:
        return _stop(message, MessageStatus.CANCELED, f"appointment {appointment.status}", now)
    if appointment.start <= now:
        return _stop(message, MessageStatus.CANCELED, "appointment already started", now)
    if not _reminder_follows(enrollment, appointment):
        return _stop(message, MessageStatus.CANCELED, "appointment moved", now)
    # Re-render: the date and time follow the appointment if it moved.
    templates = _templates(message, campaign)
    if templates is None:
        return _stop(message, MessageStatus.SKIPPED, STEP_REMOVED, now)
    unsubscribe = unsubscribe_url_for(message) if message.channel == "email" else ""
    subject, body = render_message(
        channel=message.channel,
        subject=templates[0],
        body=templates[1],
        patient=message.patient,
        practice=campaign.practice,
        appointment=appointment,
        links={"UnsubscribeLink": unsubscribe} if unsubscribe else None,
    )
    if unsubscribe:
        body = unsubscribe_footer_add(body=body, url=unsubscribe)
    body = links_track(message=message, body=body, channel=message.channel)
    footer = message.body.endswith(f"\n{STOP_FOOTER}")
    message.subject, message.body = subject, body + (f"\n{STOP_FOOTER}" if footer else "")
    if trigger.get("when") == "days_before":
        send_day = appointment.local_date - dt.timedelta(days=trigger["days"])
        if send_day > now.astimezone(tz).date():
            due = run_time(campaign.schedule or DEFAULT_SCHEDULE, send_day, tz)
            message_transition(
                message,
                status=MessageStatus.QUEUED,
                reason="appointment moved: reminder rescheduled",
                at=now,
                source="engine",
                fields={
                    "scheduled_for": due,
                    "claimed_until": None,
                    "subject": message.subject,
                    "body": message.body,
                },
            )
            return True
    return False


def _templates(message: OutboundMessage, campaign) -> tuple[str, str] | None:
    """The (subject, body) templates ``message`` was made from: its own copy, whatever edits
    the campaign's steps had since; for a message made before messages kept them, its
    step's, if the step is still there (None if not)."""
    if message.body_template:
        return message.subject_template, message.body_template
    step = campaign.steps.filter(position=message.step_position).first()
    return (step.subject, step.body) if step is not None else None
