"""Provider webhooks (DESIGN §7; the paths are a contract): thin views that check the
signature, parse, and call one service in ``messaging.webhook_services``.

Providers POST without a CSRF token, so these views are CSRF-exempt; the signature is the
credential. A forged or unsigned request answers 403 and changes nothing.
"""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.twiml.messaging_response import MessagingResponse

from messaging.tasks import apply_sendgrid_events_task, apply_twilio_status_task
from messaging.webhook_services import (
    sendgrid_signature_valid,
    twilio_inbound_practice,
    twilio_inbound_receive,
    twilio_signature_valid,
    twilio_status_practice,
)
from trackstat.models import Practice

FORBIDDEN = "Invalid signature."
# What the asynchronous tasks need from an event, and nothing about the patient.
TWILIO_STATUS_FIELDS = ("MessageSid", "MessageStatus", "ErrorCode")
SENDGRID_EVENT_FIELDS = ("event", "outbox_id", "sg_event_id", "timestamp", "type")


def _twilio_signed(request: HttpRequest, practice: Practice | None) -> bool:
    return twilio_signature_valid(
        practice=practice,
        full_path=request.get_full_path(),
        params=request.POST,
        signature=request.headers.get("X-Twilio-Signature", ""),
        settings_header=request.headers.get("X-Twilio-Webhooks-Signature-Settings", ""),
    )


@csrf_exempt
@require_POST
def twilio_status(request: HttpRequest) -> HttpResponse:
    """A Twilio status callback for the outbox row named by ``?outbox=<id>``."""
    practice = twilio_status_practice(outbox_id=request.GET.get("outbox", ""))
    if not _twilio_signed(request, practice):
        return HttpResponseForbidden(FORBIDDEN)
    # Applied asynchronously; the task gets ids and statuses only, never the phone numbers.
    fields = {name: request.POST.get(name, "") for name in TWILIO_STATUS_FIELDS}
    apply_twilio_status_task.delay(request.GET.get("outbox", ""), fields)
    return HttpResponse(status=204)


@csrf_exempt
@require_POST
def twilio_inbound(request: HttpRequest) -> HttpResponse:
    """An inbound SMS: answered with TwiML (empty, or the HELP text)."""
    if not _twilio_signed(request, twilio_inbound_practice(params=request.POST)):
        return HttpResponseForbidden(FORBIDDEN)
    result = twilio_inbound_receive(params=request.POST, now=timezone.now())
    twiml = MessagingResponse()
    if result.reply:
        twiml.message(result.reply)
    return HttpResponse(str(twiml), content_type="text/xml")


@csrf_exempt
@require_POST
def sendgrid_events(request: HttpRequest) -> HttpResponse:
    """A batch of SendGrid events (a JSON array), signed with the webhook's ECDSA key."""
    try:
        payload = request.body.decode("utf-8")
    except UnicodeDecodeError:
        return HttpResponseBadRequest("The body must be UTF-8 JSON.")
    if not sendgrid_signature_valid(
        payload=payload,
        signature=request.headers.get("X-Twilio-Email-Event-Webhook-Signature", ""),
        timestamp=request.headers.get("X-Twilio-Email-Event-Webhook-Timestamp", ""),
    ):
        return HttpResponseForbidden(FORBIDDEN)
    try:
        events = json.loads(payload)
    except ValueError:
        return HttpResponseBadRequest("The body must be a JSON array of events.")
    if not isinstance(events, list):
        return HttpResponseBadRequest("The body must be a JSON array of events.")
    # Applied asynchronously; the task gets each event without its address or reason text.
    apply_sendgrid_events_task.delay(
        [
            {name: event[name] for name in SENDGRID_EVENT_FIELDS if name in event}
            for event in events
            if isinstance(event, dict)
        ]
    )
    return HttpResponse(status=204)
