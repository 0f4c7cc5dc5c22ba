"""The patient page's message history (DESIGN §9), served by messaging.

Registered with the patient page in ``MessagingConfig.ready`` (``patients.panels``): htmx loads
it into the patient page; without JavaScript the same URL answers a whole page. Every member
sees it; another practice's patient is a 404.
"""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_safe

from messaging.selectors import patient_messages
from patients.panels import PatientPanel
from patients.selectors import patient_queryset
from trackstat.htmx import wants_partial
from trackstat.models import Role
from trackstat.tenancy import PracticeRequest, role_required

MESSAGES_SHOWN = 50
TEMPLATE = "messaging/patient_messages.html"

MESSAGES_PANEL = PatientPanel(
    key="messages",
    title="Message history",
    link_text="Show the messages sent to this patient",
    url_name="messaging:patient_messages",
    role=Role.USER,
    position=20,
)


@require_safe
@role_required(Role.USER)
def patient_message_history(request: PracticeRequest, patient_id: int) -> HttpResponse:
    """The patient's latest messages, newest first, in the practice's time zone."""
    patient = get_object_or_404(patient_queryset(practice=request.practice), pk=patient_id)
    context = {
        "patient": patient,
        "messages_sent": patient_messages(practice=request.practice, patient=patient)[
            :MESSAGES_SHOWN
        ],
    }
    template = f"{TEMPLATE}#history" if wants_partial(request) else TEMPLATE
    return render(request, template, context)
