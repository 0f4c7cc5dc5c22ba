"""The drip campaign list: each campaign with its trigger, its steps and its on/off bell (the
toggle swaps its row with htmx), and removing a campaign (drip or blast)."""

from __future__ import annotations

import datetime as dt

from django.contrib import messages as flash
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from campaigns import services
from campaigns.forms.fields import EnabledForm
from campaigns.language.describe import describe_trigger
from campaigns.models import Campaign, CampaignKind
from campaigns.selectors import (
    audience,
    campaign_has_history,
    campaign_list,
    same_trigger_overlaps,
)
from campaigns.views.shared import campaign_or_404, error_text
from campaigns.views.wizard_state import draft_discard, draft_key
from messaging.models import Channel
from trackstat.confirm import confirmation_page, is_confirmed
from trackstat.htmx import wants_partial
from trackstat.models import Role
from trackstat.tenancy import PracticeRequest, role_required


def _drip_row(campaign: Campaign) -> dict:
    steps = list(campaign.steps.all())
    return {
        "campaign": campaign,
        "trigger": describe_trigger(campaign.trigger),
        "steps": len(steps),
        "sms": sum(step.channel == Channel.SMS for step in steps),
        "email": sum(step.channel == Channel.EMAIL for step in steps),
    }


def drip_enable_question(campaign: Campaign, *, at: dt.datetime) -> str:
    """What turning ``campaign`` on does, with the number of patients it matches now."""
    count = audience(campaign, at=at).count()
    question = (
        f"Turn on “{campaign.name}”? {count:,} patient{pluralize(count)} "
        f"match{'es' if count == 1 else ''} it now and would get its messages from its next run."
    )
    if count and not campaign.exclude_recent_days:
        overlap = same_trigger_overlaps(
            practice=campaign.practice,
            trigger=campaign.trigger,
            filters=campaign.filters,
            at=at,
            campaign_id=campaign.pk,
        )
        for other in overlap["campaigns"]:
            if other["shared"]:
                question += (
                    f" {other['shared']:,} of them also get “{other['campaign'].name}”, which "
                    "has the same trigger (this campaign's Audience step can skip patients "
                    "messaged lately)."
                )
    return question


@require_safe
@role_required(Role.USER_PLUS)
def drip_list(request: PracticeRequest) -> HttpResponse:
    campaigns = campaign_list(practice=request.practice, kind=CampaignKind.DRIP)
    new_draft = request.session.get(draft_key(request.practice.pk, None))
    context = {"rows": [_drip_row(c) for c in campaigns], "new_draft": new_draft}
    return render(request, "campaigns/drip_list.html", context)


@require_POST
@role_required(Role.USER_PLUS)
def drip_toggle(request: PracticeRequest, campaign_id: int) -> HttpResponse:
    """The on/off switch of a row: sets the state the button asked for."""
    campaign = campaign_or_404(request, campaign_id, CampaignKind.DRIP)
    form = EnabledForm(request.POST)
    error = ""
    if form.is_valid() and form.cleaned_data["enabled"] and not is_confirmed(request):
        # Turning a drip on texts whoever it matches: say how many first. The count is taken
        # here, on demand, not for every row of the list (its queries must not grow).
        question = drip_enable_question(campaign, at=timezone.now())
        if wants_partial(request):
            context = {"row": _drip_row(campaign), "confirm_question": question}
            return render(request, "campaigns/drip_list.html#row", context)
        return confirmation_page(
            request,
            question=question,
            detail="Quiet hours and opt-outs apply; you can turn it off again at any time.",
            confirm_label="Turn on",
            cancel_url=reverse("campaigns:drip_list"),
            danger=False,
        )
    if form.is_valid():
        try:
            services.campaign_set_enabled(
                campaign=campaign, enabled=form.cleaned_data["enabled"], actor=request.user
            )
        except ValidationError as problem:
            error = error_text(problem)
    else:
        error = "Use true or false."
    if wants_partial(request):
        campaign = campaign_list(practice=request.practice).get(pk=campaign.pk)
        context = {"row": _drip_row(campaign), "row_error": error}
        return render(
            request, "campaigns/drip_list.html#row", context, status=400 if error else 200
        )
    if error:
        flash.error(request, error)
    else:
        state = "on" if form.cleaned_data["enabled"] else "off"
        flash.success(request, f"“{campaign.name}” is {state}.")
    return redirect("campaigns:drip_list")


@role_required(Role.USER_PLUS)
def campaign_delete(request: PracticeRequest, campaign_id: int) -> HttpResponse:
    """GET: ask to confirm; POST: delete (audited) — or archive, when the campaign enrolled
    anyone (``services.campaign_delete``). A sent blast is kept as it is."""
    campaign = get_object_or_404(
        Campaign, pk=campaign_id, practice=request.practice, archived_at__isnull=True
    )
    back = "campaigns:blast_list" if campaign.is_blast else "campaigns:drip_list"
    context = {"campaign": campaign, "back": back, "archives": campaign_has_history(campaign)}
    if campaign.is_blast and campaign.sent_at:
        context["error"] = "A sent blast is read-only: it is kept as the record of what went out."
        return render(request, "campaigns/confirm_delete.html", context, status=400)
    if request.method == "POST":
        name = campaign.name
        try:
            outcome = services.campaign_delete(campaign=campaign, actor=request.user)
        except ValidationError as error:
            context["error"] = error_text(error)
            return render(request, "campaigns/confirm_delete.html", context, status=400)
        draft_discard(request.session, practice_id=request.practice.pk, campaign=campaign)
        if outcome == "archived":
            flash.success(request, f"Archived “{name}”: it has stopped; its report is kept.")
        else:
            flash.success(request, f"Deleted “{name}”.")
        return redirect(back)
    return render(request, "campaigns/confirm_delete.html", context)
