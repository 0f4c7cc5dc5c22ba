"""A drip campaign's own page: what it is (trigger, schedule, filters, steps, goal), whether it
is on, and its 7-day forecast (``campaigns.forecast``); the wizard's review step shows the
same forecast for the draft."""

from __future__ import annotations

import datetime as dt

from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from campaigns.forecast import StepPlan, campaign_forecast
from campaigns.language.describe import (
    describe_delay,
    describe_filters,
    describe_goal,
    describe_schedule,
    describe_trigger,
)
from campaigns.language.triggers import continuous_of
from campaigns.models import Campaign, CampaignKind
from campaigns.views.shared import campaign_or_404, sees_financials
from trackstat.models import Role
from trackstat.tenancy import PracticeRequest, role_required


def forecast_context(
    campaign: Campaign, *, now: dt.datetime, steps: list[StepPlan] | None = None
) -> dict:
    """What ``campaigns/_forecast.html`` shows for ``campaign`` (or a draft of it)."""
    context: dict = {"practice": campaign.practice}
    if not campaign.trigger:
        context["forecast_error"] = "Choose the trigger (step 2) to see the forecast."
        return context
    if steps is not None and not steps:
        context["forecast_error"] = "Add a message (step 3) to see the forecast."
        return context
    forecast = campaign_forecast(campaign, now=now, steps=steps)
    how = continuous_of(campaign.trigger)
    context.update(
        forecast=forecast,
        forecast_trigger=describe_trigger(campaign.trigger).lower(),
        forecast_event=how.event if how else "",
    )
    return context


def draft_forecast_context(*, practice, campaign: Campaign | None, draft: dict, now) -> dict:
    """The forecast of a wizard draft: its trigger, filters, schedule and messages, as the
    campaign being edited (patients already in it count) or a new one."""
    unsaved = Campaign(
        pk=campaign.pk if campaign else None,
        practice=practice,
        kind=CampaignKind.DRIP,
        enabled=campaign.enabled if campaign else False,
        enabled_at=campaign.enabled_at if campaign else None,
        trigger=draft.get("trigger") or {},
        filters=draft.get("filters") or {},
        schedule=draft.get("schedule") or {},
        exclude_recent_days=draft.get("exclude_recent_days") or 0,
    )
    try:
        steps = [StepPlan.from_draft(message) for message in draft.get("messages") or []]
        return forecast_context(unsaved, now=now, steps=steps)
    except (KeyError, TypeError, ValueError):  # a draft not complete enough to run
        return {"practice": practice, "forecast_error": "Complete steps 2 and 3 to see it."}


@require_safe
@role_required(Role.USER_PLUS)
def drip_detail(request: PracticeRequest, campaign_id: int) -> HttpResponse:
    """The campaign at a glance, with what it would send over the next 7 days."""
    campaign = campaign_or_404(request, campaign_id, CampaignKind.DRIP)
    campaign.practice = request.practice
    steps = list(campaign.steps.order_by("position"))
    context = {
        "campaign": campaign,
        "trigger_text": describe_trigger(campaign.trigger),
        "schedule_text": describe_schedule(campaign.schedule, campaign.trigger),
        "filter_lines": describe_filters(
            campaign.filters, can_see_financials=sees_financials(request)
        ),
        "goal_text": describe_goal(campaign.goal),
        "steps": [
            {
                "step": step,
                "delay_text": describe_delay(
                    {"value": step.delay_value, "unit": step.delay_unit}, step.position
                ),
            }
            for step in steps
        ],
        **forecast_context(campaign, now=timezone.now()),
    }
    return render(request, "campaigns/drip_detail.html", context)
