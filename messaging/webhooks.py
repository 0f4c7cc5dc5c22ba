"""Provider webhooks (DESIGN §7; the paths are a contract): thin views that check the
signature, parse, and hand the event to ``messaging.webhook_intake``, which stores it before
the provider is answered and applies it from there.

Providers POST without a CSRF token, so these views are CSRF-exempt; the signature is the
credential. A forged or unsigned request answers 403 and changes nothing; so does a signed
SendGrid batch whose signing time is outside ``SENDGRID_WEBHOOK_MAX_AGE_SECONDS`` (a replay).
A verified event is answered 2xx once stored, whether or not the broker is up.
"""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.twiml.messaging_response import MessagingResponse

from messaging.webhook_intake import (
    sendgrid_events_accept,
    twilio_inbound_accept,
    twilio_status_accept,
)
from messaging.webhook_services import (
    sendgrid_signature_valid,
    sendgrid_timestamp_fresh,
    twilio_inbound_practice,
    twilio_signature_valid,
    twilio_status_practice,
)
from trackstat.models import Practice

FORBIDDEN = "Invalid signature."


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
    outbox_id = request.GET.get("outbox", "")
    practice = twilio_status_practice(outbox_id=outbox_id)
    if not _twilio_signed(request, practice):
        return HttpResponseForbidden(FORBIDDEN)
    # Stored (ids and statuses only, never the phone numbers), then applied by a task.
    twilio_status_accept(
        outbox_id=outbox_id, params=request.POST, practice=practice, now=timezone.now()
    )
    return HttpResponse(status=204)


@csrf_exempt
@require_POST
def twilio_inbound(request: HttpRequest) -> HttpResponse:
    """An inbound SMS: stored, applied at once, and answered with TwiML (empty, or the HELP
    text). Should applying fail, it is retried from the table and the answer is empty."""
    practice = twilio_inbound_practice(params=request.POST)
    if not _twilio_signed(request, practice):
        return HttpResponseForbidden(FORBIDDEN)
    result = twilio_inbound_accept(params=request.POST, practice=practice, now=timezone.now())
    twiml = MessagingResponse()
    if result is not None and result.reply:
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
    timestamp = request.headers.get("X-Twilio-Email-Event-Webhook-Timestamp", "")
    now = timezone.now()
    if not sendgrid_signature_valid(
        payload=payload,
        signature=request.headers.get("X-Twilio-Email-Event-Webhook-Signature", ""),
        timestamp=timestamp,
    ) or not sendgrid_timestamp_fresh(timestamp=timestamp, now=now):
        return HttpResponseForbidden(FORBIDDEN)
    try:
        events = json.loads(payload)
    except ValueError:
        return HttpResponseBadRequest("The body must be a JSON array of events.")
    if not isinstance(events, list):
        return HttpResponseBadRequest("The body must be a JSON array of events.")
    # Stored one row per event (without its address or reason text), then applied by tasks.
    sendgrid_events_accept(events=events, now=now)
    return HttpResponse(status=204)
