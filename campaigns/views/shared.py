"""What the campaign pages share: fetching a campaign of the practice, the role that sees
financial fields, a service error as text, and the SMS counter every message editor asks."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from campaigns.content.sms import sms_counts
from campaigns.models import Campaign
from trackstat.models import Role
from trackstat.tenancy import PracticeRequest, has_role, role_required

SMS_FIELD_RE = re.compile(r"^(step-\d+-)?body$")


def campaign_or_404(request: PracticeRequest, campaign_id: int, kind: str) -> Campaign:
    return get_object_or_404(
        Campaign, pk=campaign_id, practice=request.practice, kind=kind, archived_at__isnull=True
    )


def sees_financials(request: PracticeRequest) -> bool:
    return has_role(request, Role.MANAGER)


def error_text(error: ValidationError) -> str:
    return " ".join(error.messages)


@require_POST
@role_required(Role.USER_PLUS)
def sms_count(request: PracticeRequest) -> HttpResponse:
    """Length and segments of an SMS body as typed (htmx, on input)."""
    name = request.GET.get("field", "body")
    if not SMS_FIELD_RE.match(name):
        return HttpResponse("Unknown field.", status=400)
    body = request.POST.get(name, "").replace("\r\n", "\n")
    if request.POST.get(name.removesuffix("body") + "ask_confirmation"):
        # A text that asks ends with the practice's question: count it too.
        body = f"{body}\n{request.practice.confirmation_wording('confirmation_request_text')}"
    context = sms_counts(body)
    return render(request, "campaigns/sms_count.html", context)
