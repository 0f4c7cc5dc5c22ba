"""Provider webhooks (DESIGN §6, §7): signature checks and applying what the provider says.

Every provider event is applied once (by its provider event id) and only moves a message
forward (``message_transition``). Nothing about the patient is logged: the forms carry phone
numbers and email addresses, so logs name only outbox ids and provider ids.

Twilio signatures are checked with the auth token of the practice the request is about (the
outbox message's practice for a status callback, the practice whose sender number is ``To``
for an inbound SMS), else ``TWILIO_AUTH_TOKEN``. The webhooks store each verified event
first (``messaging.webhook_intake``); ``messaging.webhook_events`` then applies it with the
functions here.
"""

from __future__ import annotations

import binascii
import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from sendgrid.helpers.eventwebhook import EventWebhook
from twilio.request_validator import RequestValidator, get_signature_algorithm

from messaging.confirmations.replies import confirmation_reply_apply
from messaging.inbound import help_reply, inbound_keyword, opt_out_confirmation
from messaging.models import (
    SENT_STATUSES,
    Channel,
    InboundHandling,
    InboundMessage,
    MessageEvent,
    MessageStatus,
    OutboundMessage,
)
from messaging.opt_out_words import Verdict, opt_out_verdict
from messaging.outbox.status import message_transition, message_unsubscribed_record
from patients.models import ConsentSource, OptOutSource, Patient
from patients.services import patient_opt_out_set
from trackstat.credentials import credentials_for
from trackstat.events import event_emit
from trackstat.models import EventType, Practice
from trackstat.validators import storable_text

logger = logging.getLogger(__name__)

TWILIO_ACTOR = "twilio webhook"
SENDGRID_ACTOR = "sendgrid webhook"
WEBHOOK_SOURCE = "webhook"

# Twilio MessageStatus → ours; queued/accepted/sending (and anything unknown) are ignored.
TWILIO_STATUSES = {
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "undelivered": MessageStatus.UNDELIVERED,
    "failed": MessageStatus.FAILED,
}
# "Attempt to send to unsubscribed recipient": the carrier has this number opted out.
TWILIO_UNSUBSCRIBED_ERROR = "21610"

# SendGrid event → ours; processed/deferred (and anything unknown) are ignored.
SENDGRID_STATUSES = {
    "delivered": MessageStatus.DELIVERED,
    "open": MessageStatus.OPENED,
    "click": MessageStatus.CLICKED,
    "bounce": MessageStatus.BOUNCED,
    "dropped": MessageStatus.DROPPED,
    "spamreport": MessageStatus.SPAM,
}
# Events that opt the patient out of email, and with what source.
SENDGRID_OPT_OUTS = {
    "bounce": OptOutSource.PROVIDER,  # a bounce blocks later email to that address
    "spamreport": OptOutSource.PROVIDER,
    # SendGrid drops mail to addresses that bounced, reported spam or are invalid: the
    # patient's email is not usable either way.
    "dropped": OptOutSource.PROVIDER,
    "unsubscribe": OptOutSource.UNSUBSCRIBE,
    "group_unsubscribe": OptOutSource.UNSUBSCRIBE,
}


# Of those, the ones the patient asked for: reports count them as unsubscribes.
SENDGRID_UNSUBSCRIBES = {"spamreport", "unsubscribe", "group_unsubscribe"}
# What happened to the address, recorded (and reported) even when it comes after a status
# it cannot move the message back from: a bounce after the email was opened.
SENDGRID_ALWAYS_RECORDED = {MessageStatus.BOUNCED, MessageStatus.DROPPED, MessageStatus.SPAM}
# A STOP counts against the campaign text it answers: the last one sent in this window.
STOP_ATTRIBUTION_WINDOW = dt.timedelta(days=30)


# --- signatures ----------------------------------------------------------------------------


def twilio_status_practice(*, outbox_id: str) -> Practice | None:
    """The practice of the SMS outbox row a status callback names, if any."""
    if not outbox_id.isdigit():
        return None
    message = (
        OutboundMessage.objects.filter(pk=int(outbox_id), channel=Channel.SMS)
        .select_related("practice")
        .first()
    )
    return message.practice if message is not None else None


def twilio_inbound_practice(*, params: Mapping[str, str]) -> Practice | None:
    """The practice whose sender number is the inbound SMS's ``To``, if any (a number
    belongs to one practice: a unique constraint)."""
    to_number = storable_text(params.get("To", ""))
    if not to_number:
        return None
    return Practice.objects.filter(sms_from=to_number).first()


def twilio_signature_valid(
    *,
    practice: Practice | None,
    full_path: str,
    params: Mapping[str, Any],
    signature: str,
    settings_header: str = "",
) -> bool:
    """Whether ``X-Twilio-Signature`` signs this request with ``practice``'s Twilio auth token
    (else ``TWILIO_AUTH_TOKEN``), checked against the public URL (``PUBLIC_BASE_URL`` + path +
    query), never the request's own scheme and host, which a TLS-terminating proxy changes.
    Without an auth token nothing is valid."""
    token = credentials_for(practice).twilio_auth_token
    if not token or not signature:
        return False
    url = settings.PUBLIC_BASE_URL.rstrip("/") + full_path
    return RequestValidator(token).validate(
        url, params, signature, algorithm=get_signature_algorithm(settings_header)
    )


def sendgrid_timestamp_fresh(*, timestamp: str, now: dt.datetime) -> bool:
    """Whether a SendGrid batch was signed within ``SENDGRID_WEBHOOK_MAX_AGE_SECONDS`` of
    ``now`` (either way, for clock skew): an older signed batch is a replay, refused."""
    try:
        signed_at = int(timestamp)
    except ValueError:
        return False
    return abs(now.timestamp() - signed_at) <= settings.SENDGRID_WEBHOOK_MAX_AGE_SECONDS


def sendgrid_signature_valid(*, payload: str, signature: str, timestamp: str) -> bool:
    """Whether the SendGrid event webhook signature (ECDSA over timestamp + body) is valid
    for ``SENDGRID_WEBHOOK_PUBLIC_KEY``. Without a key nothing is valid."""
    public_key = settings.SENDGRID_WEBHOOK_PUBLIC_KEY
    if not public_key or not signature or not timestamp:
        return False
    webhook = EventWebhook()
    try:
        key = webhook.convert_public_key_to_ecdsa(public_key)
        return webhook.verify_signature(payload, signature, timestamp, key)
    except (ValueError, TypeError, binascii.Error):
        # A malformed signature (or a misconfigured key): not valid.
        logger.warning("sendgrid webhook: unreadable signature or public key")
        return False


# --- Twilio status callbacks ---------------------------------------------------------------


def _event_seen(provider_event_id: str) -> bool:
    return MessageEvent.objects.filter(provider_event_id=provider_event_id).exists()


@transaction.atomic
def twilio_status_apply(*, outbox_id: str, params: Mapping[str, str], now: dt.datetime) -> bool:
    """Apply one Twilio status callback to the outbox row named by ``outbox_id`` (from the
    callback URL), which must also carry the callback's ``MessageSid``. Returns whether the
    message moved; a duplicate, a late or an unknown event changes nothing."""
    sid = params.get("MessageSid", "")
    twilio_status = params.get("MessageStatus", "")
    status = TWILIO_STATUSES.get(twilio_status)
    if status is None or not sid or not outbox_id.isdigit():
        return False
    message = (
        OutboundMessage.objects.select_for_update(of=("self",))
        .filter(pk=int(outbox_id), provider_id=sid, channel=Channel.SMS)
        .select_related("practice", "patient")
        .first()
    )
    if message is None:
        logger.info("twilio status: no outbox %s with sid %s", outbox_id, sid)
        return False
    event_id = f"twilio:{sid}:{twilio_status}"
    if _event_seen(event_id):
        return False
    error_code = params.get("ErrorCode", "") or ""
    reason = f"Twilio error {error_code}" if error_code else ""
    moved = message_transition(
        message,
        status=status,
        reason=reason,
        at=now,
        source=WEBHOOK_SOURCE,
        provider_event_id=event_id,
        fields={"error_code": error_code[:50]} if error_code else None,
    )
    if (
        status in (MessageStatus.FAILED, MessageStatus.UNDELIVERED)
        and error_code == TWILIO_UNSUBSCRIBED_ERROR
        and message.patient is not None
    ):
        patient_opt_out_set(
            practice=message.practice,
            patient=message.patient,
            channel=Channel.SMS,
            opted_out=True,
            source=OptOutSource.PROVIDER,
            actor=TWILIO_ACTOR,
        )
    return moved


# --- Twilio inbound SMS --------------------------------------------------------------------


@dataclass(frozen=True)
class InboundResult:
    handled_as: str | None  # None: no practice has this number, nothing stored
    reply: str = ""  # the SMS to answer with (HELP), or nothing


def twilio_inbound_receive(*, params: Mapping[str, str], now: dt.datetime) -> InboundResult:
    """Store one inbound SMS (once per ``MessageSid``) for the practice whose sender number
    is ``To`` and act on its keyword: STOP opts the sender out of SMS (which cancels their
    queued texts), START opts them back in, HELP is answered, anything else is for the
    Inbox. A redelivered SMS is not applied twice."""
    # Kept whatever it holds: a NUL or a lone surrogate (which PostgreSQL cannot store) is
    # dropped or replaced, never a reason to lose the text.
    sid = storable_text(params.get("MessageSid", "") or params.get("SmsSid", ""))
    to_number = storable_text(params.get("To", ""))
    from_number = storable_text(params.get("From", ""))
    body = storable_text(params.get("Body", ""))
    if not sid or not to_number:
        return InboundResult(handled_as=None)
    practice = twilio_inbound_practice(params=params)
    if practice is None:
        # Answered (empty TwiML) and not stored. Our number's last digits tell the operator
        # which one is routed here without an owner; the sender and the text stay out.
        logger.warning(
            "twilio inbound %s: no practice owns the number ending %s; not stored",
            sid,
            to_number[-4:],
        )
        return InboundResult(handled_as=None)
    handled_as = inbound_keyword(body)
    reply = (
        help_reply(practice_name=practice.name, practice_phone=practice.phone)
        if handled_as == InboundHandling.HELP
        else ""
    )
    # A number can belong to several patients of a practice (a family phone): the carrier
    # opt-out is per number, so a keyword applies to all of them; the thread is the first's.
    patients = (
        list(Patient.objects.filter(practice=practice, phone=from_number).order_by("pk"))
        if from_number
        else []
    )
    # Any other wording a reasonable person reads as "stop texting me" opts out too; a
    # reply the rules are unsure about goes to the Inbox flagged for staff.
    might_be_opt_out = False
    if handled_as == InboundHandling.INBOX:
        verdict = opt_out_verdict(body)
        if verdict == Verdict.OPT_OUT and patients:
            handled_as = InboundHandling.OPT_OUT_WORDS
        elif verdict != Verdict.NOT:
            might_be_opt_out = True
    with transaction.atomic():
        try:
            with transaction.atomic():
                inbound = InboundMessage.objects.create(
                    practice=practice,
                    patient=patients[0] if patients else None,
                    from_number=from_number[:32],
                    to_number=to_number[:32],
                    body=body,
                    provider_message_id=sid[:100],
                    received_at=now,
                    handled_as=handled_as,
                    might_be_opt_out=might_be_opt_out,
                )
        except IntegrityError:
            logger.info("twilio inbound %s: already received", sid)
            # HELP is answered again; an opt-out was confirmed once, when it was received.
            return InboundResult(handled_as=handled_as, reply=reply)
        if handled_as == InboundHandling.OPT_OUT_WORDS:
            newly = [patient for patient in patients if not patient.sms_opt_out]
            for patient in newly:
                _stop_attribute(patient=patient, now=now)
                patient_opt_out_set(
                    practice=practice,
                    patient=patient,
                    channel=Channel.SMS,
                    opted_out=True,
                    source=OptOutSource.SMS_REPLY,
                    actor=TWILIO_ACTOR,
                    consent_source=ConsentSource.REPLY,
                    wording=body,
                )
            # Exactly one confirmation, and none to a number already opted out (the carrier
            # would refuse it anyway).
            if newly:
                reply = opt_out_confirmation(practice_name=practice.name)
        if handled_as == InboundHandling.INBOX:
            # A reply to a reminder that asked is read as the answer (DESIGN §7); the text
            # stays in the Inbox thread either way.
            confirmation_reply_apply(practice=practice, inbound=inbound, patients=patients, now=now)
            event_emit(
                practice=practice,
                type=EventType.INBOX_MESSAGE_RECEIVED,
                data={
                    "message_id": inbound.pk,
                    "patient_external_id": patients[0].external_id if patients else None,
                },
            )
        if handled_as in (InboundHandling.STOP, InboundHandling.START):
            for patient in patients:
                if handled_as == InboundHandling.STOP and not patient.sms_opt_out:
                    _stop_attribute(patient=patient, now=now)
                patient_opt_out_set(
                    practice=practice,
                    patient=patient,
                    channel=Channel.SMS,
                    opted_out=handled_as == InboundHandling.STOP,
                    source=OptOutSource.SMS_REPLY,
                    actor=TWILIO_ACTOR,
                    wording=body,
                )
    return InboundResult(handled_as=handled_as, reply=reply)


def _stop_attribute(*, patient: Patient, now: dt.datetime) -> None:
    """Attribute a STOP to the last text the patient was sent, if a campaign sent it."""
    last = (
        OutboundMessage.objects.filter(
            patient=patient,
            channel=Channel.SMS,
            status__in=SENT_STATUSES,
            is_test=False,
            sent_at__gte=now - STOP_ATTRIBUTION_WINDOW,
        )
        .order_by("-sent_at", "-id")
        .first()
    )
    if last is not None:
        message_unsubscribed_record(message=last, at=now)


# --- SendGrid events -----------------------------------------------------------------------


def _event_time(event: Mapping[str, Any], now: dt.datetime) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(int(event["timestamp"]), tz=dt.UTC)
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return now


@transaction.atomic
def sendgrid_event_apply(*, event: Mapping[str, Any], now: dt.datetime) -> bool:
    """Apply one SendGrid event to the outbox row named by its ``outbox_id`` custom arg, once
    per ``sg_event_id``. Returns whether anything was applied."""
    kind = str(event.get("event", ""))
    status = SENDGRID_STATUSES.get(kind)
    opt_out_source = SENDGRID_OPT_OUTS.get(kind)
    outbox_id = str(event.get("outbox_id", ""))
    sg_event_id = str(event.get("sg_event_id", ""))
    if (status is None and opt_out_source is None) or not outbox_id.isdigit() or not sg_event_id:
        return False
    message = (
        OutboundMessage.objects.select_for_update(of=("self",))
        .filter(pk=int(outbox_id), channel=Channel.EMAIL)
        .select_related("practice", "patient")
        .first()
    )
    if message is None:
        logger.info("sendgrid %s: no email outbox %s", kind, outbox_id)
        return False
    event_id = f"sendgrid:{sg_event_id}"
    if _event_seen(event_id):
        return False
    if status is not None:
        reason = str(event.get("type", ""))  # the bounce type; the reason text may name addresses
        moved = message_transition(
            message,
            status=status,
            reason=reason,
            at=_event_time(event, now),
            source=WEBHOOK_SOURCE,
            provider_event_id=event_id,
        )
        if not moved and status in SENDGRID_ALWAYS_RECORDED:
            _event_record(
                message, status=status, reason=reason, at=_event_time(event, now), event_id=event_id
            )
    if opt_out_source is not None and message.patient is not None:
        if kind in SENDGRID_UNSUBSCRIBES and not message.patient.email_opt_out:
            message_unsubscribed_record(message=message, at=_event_time(event, now))
        patient_opt_out_set(
            practice=message.practice,
            patient=message.patient,
            channel=Channel.EMAIL,
            opted_out=True,
            source=opt_out_source,
            actor=SENDGRID_ACTOR,
            consent_source=ConsentSource.BOUNCE if kind == "bounce" else None,
        )
    return True


def _event_record(
    message: OutboundMessage, *, status: str, reason: str, at: dt.datetime, event_id: str
) -> None:
    """Record a provider event that does not move the message's status (once per event id),
    and have the reports count its fact."""
    try:
        with transaction.atomic():
            MessageEvent.objects.create(
                practice_id=message.practice_id,
                message=message,
                status=status,
                reason=reason[:200],
                at=at,
                source=WEBHOOK_SOURCE,
                provider_event_id=event_id,
            )
    except IntegrityError:
        return  # already recorded
    OutboundMessage.objects.filter(pk=message.pk).update(report_pending=True)


def sendgrid_events_apply(*, events: list[Any], now: dt.datetime) -> int:
    """Apply a batch of SendGrid events, each in its own transaction (one bad event does not
    undo the others). Returns how many were applied."""
    applied = 0
    for event in events:
        if isinstance(event, dict) and sendgrid_event_apply(event=event, now=now):
            applied += 1
    return applied
