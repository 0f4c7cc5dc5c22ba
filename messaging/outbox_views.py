"""The message list: the practice's messages sent on a day, scheduled, or failed and bounced,
optionally for one campaign. The Today page's numbers link here."""

from __future__ import annotations

import datetime as dt

from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from messaging.selectors import OUTBOX_STATES, PROBLEM_DAYS, outbox_list
from trackstat.models import Role
from trackstat.tenancy import PracticeRequest, role_required

MESSAGES_PER_PAGE = 50


def _day(value: str, today: dt.date) -> dt.date | None:
    if value in ("", None):
        return None
    if value == "today":
        return today
    if value == "tomorrow":
        return today + dt.timedelta(days=1)
    return dt.date.fromisoformat(value)


@require_safe
@role_required(Role.USER)
def message_list(request: PracticeRequest) -> HttpResponse:
    """``?state=sent|scheduled|problems`` with optional ``day`` (YYYY-MM-DD, today,
    tomorrow) and ``campaign`` (its id)."""
    practice = request.practice
    now = timezone.now()
    today = now.astimezone(practice.tz).date()
    errors = []
    state = request.GET.get("state", "sent")
    if state not in OUTBOX_STATES:
        errors.append(f"Show: choose one of {', '.join(OUTBOX_STATES.values())}.")
        state = "sent"
    try:
        day = _day(request.GET.get("day", ""), today)
    except ValueError:
        errors.append("Day: use a date like 2026-05-12, “today” or “tomorrow”.")
        day = None
    campaign_id = None
    if request.GET.get("campaign"):
        try:
            campaign_id = int(request.GET["campaign"])
        except ValueError:
            errors.append("Campaign: not a campaign of this practice.")
    messages = outbox_list(
        practice=practice, state=state, now=now, day=day, campaign_id=campaign_id
    )
    page = Paginator(messages, MESSAGES_PER_PAGE).get_page(request.GET.get("page"))
    campaign = next((m.campaign for m in page if m.campaign_id == campaign_id), None)
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "page": page,
        "state": state,
        "states": OUTBOX_STATES,
        "day": day,
        "today": today,
        "campaign_id": campaign_id,
        "campaign": campaign,
        "problem_days": PROBLEM_DAYS,
        "errors": errors,
        "query": query.urlencode(),
    }
    return render(request, "messaging/message_list.html", context, status=400 if errors else 200)
