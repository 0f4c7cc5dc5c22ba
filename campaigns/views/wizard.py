"""The "+ Add Campaign" wizard (DESIGN §9): five steps over a draft kept in the session
(``campaigns.views.wizard_state``), for a new drip campaign or an existing one. Steps 1, 2, 4
and 5 are here, step 3 in ``wizard_messages``; only step 5 writes the campaign. The audience
step's options and live count refresh with htmx."""

from __future__ import annotations

import json

from django.contrib import messages as flash
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.defaultfilters import pluralize
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from campaigns import services
from campaigns.content.sms import sms_counts
from campaigns.forms.audience import FiltersForm, ScheduleForm, TriggerForm
from campaigns.forms.fields import error_messages, part_label
from campaigns.forms.wizard import ExperimentForm, GoalForm, NameForm, SkipRecentForm
from campaigns.language.describe import (
    describe_delay,
    describe_filters,
    describe_goal,
    describe_schedule,
    describe_trigger,
)
from campaigns.language.spec import CampaignSerializer
from campaigns.language.triggers import is_continuous
from campaigns.models import CampaignKind
from campaigns.selectors import audience_live, same_trigger_overlaps
from campaigns.views.drip_page import draft_forecast_context
from campaigns.views.shared import campaign_or_404, error_text, sees_financials
from campaigns.views.wizard_messages import messages_step
from campaigns.views.wizard_state import (
    Wizard,
    draft_campaign_data,
    draft_discard,
    errors_by_step,
    posted_action,
    stale,
    wizard_for,
)
from messaging.models import Channel
from trackstat.confirm import confirmation_page, is_confirmed
from trackstat.models import Role
from trackstat.tenancy import PracticeRequest, role_required


@require_safe
@role_required(Role.USER_PLUS)
def drip_new(request: PracticeRequest) -> HttpResponse:
    return redirect("campaigns:drip_new_step", "name")


@require_safe
@role_required(Role.USER_PLUS)
def drip_edit(request: PracticeRequest, campaign_id: int) -> HttpResponse:
    campaign_or_404(request, campaign_id, CampaignKind.DRIP)
    return redirect("campaigns:drip_edit_step", campaign_id, "name")


@require_POST
@role_required(Role.USER_PLUS)
def drip_discard(request: PracticeRequest, campaign_id: int | None = None) -> HttpResponse:
    """Throw the draft away (a new campaign's, or unsaved changes to a campaign)."""
    wiz = wizard_for(request, campaign_id)
    draft_discard(request.session, practice_id=wiz.practice.pk, campaign=wiz.campaign)
    flash.success(request, "The draft was discarded.")
    return redirect("campaigns:drip_list")


@role_required(Role.USER_PLUS)
def drip_wizard(request: PracticeRequest, step: str, campaign_id: int | None = None):
    """Steps 1 to 5 (GET shows the step with the draft's values; POST saves the step's part)."""
    wiz = wizard_for(request, campaign_id)
    handler = {
        "name": _step_name,
        "audience": _step_audience,
        "messages": messages_step,
        "goals": _step_goals,
        "review": _step_review,
    }[step]
    return handler(request, wiz)


# Step 1


def _step_name(request: PracticeRequest, wiz: Wizard) -> HttpResponse:
    status = 200
    if request.method == "POST":
        form = NameForm(request.POST)
        if form.is_valid():
            wiz.save(name=form.cleaned_data["name"].strip())
            return wiz.move("name", posted_action(request)[0])
        status = 400
    else:
        form = NameForm(initial={"name": wiz.draft["name"]})
    return wiz.render("name", {"form": form}, status)


# Step 2


def _trigger_form_unbound(data, prefix: str = "trigger") -> TriggerForm:
    """A trigger form showing ``data``'s values without judging them (an options refresh)."""
    initial = {
        name: data.get(f"{prefix}-{name}")
        for name in TriggerForm.base_fields
        if f"{prefix}-{name}" in data
    }
    for name, value in TriggerForm.initial_for_type(initial.get("type")).items():
        initial.setdefault(name, value)
    return TriggerForm(initial=initial, prefix=prefix)


def _audience_forms(request: PracticeRequest, wiz: Wizard, data=None) -> dict:
    draft = wiz.draft
    return {
        "trigger_form": TriggerForm(
            data, initial=TriggerForm.initial_from(draft["trigger"]), prefix="trigger"
        ),
        "filters_form": FiltersForm(
            data,
            practice=wiz.practice,
            current=draft["filters"],
            can_see_financials=sees_financials(request),
            prefix="filter",
        ),
        "schedule_form": ScheduleForm(
            data,
            initial=ScheduleForm.initial_from(
                draft["schedule"],
                draft["exclude_recent_days"],
                draft.get("purpose"),
                draft.get("priority", 0),
            ),
            prefix="schedule",
        ),
    }


def _step_audience(request: PracticeRequest, wiz: Wizard) -> HttpResponse:
    status = 200
    can_see_financials = sees_financials(request)
    if request.method == "POST":
        forms = _audience_forms(request, wiz, request.POST)
        action = posted_action(request)[0]
        if action == "refresh":  # no JavaScript: show the options of the chosen trigger type
            forms["trigger_form"] = _trigger_form_unbound(request.POST)
            live = {"count": None, "filters": [], "trigger": "", "stale": True}
        else:
            trigger, filters, schedule = (
                forms["trigger_form"],
                forms["filters_form"],
                forms["schedule_form"],
            )
            valid = [form.is_valid() for form in forms.values()]
            if all(valid):
                wiz.save(
                    trigger=trigger.trigger,
                    filters=filters.filters,
                    schedule=schedule.schedule,
                    exclude_recent_days=schedule.cleaned_data["exclude_recent_days"],
                    purpose=schedule.cleaned_data["purpose"] or None,
                    priority=schedule.cleaned_data["priority"],
                )
                return wiz.move("audience", action)
            status = 400
            live = audience_live(
                practice=wiz.practice,
                trigger=trigger.trigger,
                filters=filters.filters,
                at=timezone.now(),
                can_see_financials=can_see_financials,
            )
    else:
        forms = _audience_forms(request, wiz)
        live = audience_live(
            practice=wiz.practice,
            trigger=wiz.draft["trigger"],
            filters=wiz.draft["filters"],
            at=timezone.now(),
            can_see_financials=can_see_financials,
        )
    return wiz.render("audience", {**forms, "live": live}, status)


@require_safe
@role_required(Role.USER_PLUS)
def drip_trigger_options(request: PracticeRequest, campaign_id: int | None = None):
    """The options of the chosen trigger type (htmx, when the type or ``when`` changes)."""
    wiz = wizard_for(request, campaign_id)
    context = {"trigger_form": _trigger_form_unbound(request.GET)}
    response = wiz.render("audience", context, partial="#trigger-options")
    # The count follows once the new options are on the page (it would count the old ones).
    response["HX-Trigger-After-Settle"] = json.dumps(
        {"trigger-options-changed": {"target": "#audience-live"}}
    )
    return response


@require_safe
@role_required(Role.USER_PLUS)
def drip_audience_count(request: PracticeRequest, campaign_id: int | None = None):
    """The live audience count and selected-filters summary for the audience form's values."""
    wiz = wizard_for(request, campaign_id)
    forms = _audience_forms(request, wiz, request.GET)
    trigger, filters = forms["trigger_form"], forms["filters_form"]
    trigger_ok, filters_ok = trigger.is_valid(), filters.is_valid()
    live = audience_live(
        practice=wiz.practice,
        trigger=trigger.trigger if trigger_ok else None,
        filters=filters.filters if filters_ok else None,
        at=timezone.now(),
        can_see_financials=sees_financials(request),
    )
    if not trigger_ok:
        live["problem"] = "Complete the trigger's options to see the count."
    elif not filters_ok:
        live["problem"] = "Correct the filters to see the count."
    return wiz.render("audience", {"live": live}, partial="#audience-live")


# Step 4


def _step_goals(request: PracticeRequest, wiz: Wizard) -> HttpResponse:
    several = len(wiz.draft["messages"]) > 1
    status = 200
    current = {
        "holdout_percent": wiz.draft.get("holdout_percent") or 0,
        "attribution_days": wiz.draft.get("attribution_days") or 30,
    }
    if request.method == "POST":
        action = posted_action(request)[0]
        experiment = ExperimentForm(request.POST, initial=current)
        form = GoalForm(
            request.POST if several else None, practice=wiz.practice, current=wiz.draft["goal"]
        )
        if experiment.is_valid() and (not several or form.is_valid()):
            wiz.save(goal=form.goal if several else None, **experiment.settings(current))
            return wiz.move("goals", action)
        status = 400
    else:
        experiment = ExperimentForm(initial=current)
        form = GoalForm(practice=wiz.practice, current=wiz.draft["goal"])
    context = {"form": form, "several": several, "experiment": experiment}
    return wiz.render("goals", context, status)


# Step 5


def _review_errors(grouped: dict[str, dict]) -> dict[str, list[str]]:
    """Errors by step, each as a readable line (message errors name their message)."""
    lines: dict[str, list[str]] = {}
    for step, errors in grouped.items():
        for name, detail in errors.items():
            if (
                name == "messages"
                and isinstance(detail, list)
                and detail
                and isinstance(detail[0], dict)
            ):
                for position, message_errors in enumerate(detail, start=1):
                    for part, texts in (message_errors or {}).items():
                        for text in error_messages(texts):
                            lines.setdefault(step, []).append(
                                f"Message {position}, {part_label(part)}: {text}"
                            )
                continue
            label = part_label(name)
            for text in error_messages(detail):
                lines.setdefault(step, []).append(f"{label.capitalize()}: {text}")
    return lines


def _review_context(request: PracticeRequest, wiz: Wizard) -> dict:
    draft = wiz.draft
    can_see_financials = sees_financials(request)
    messages = []
    for position, message in enumerate(draft["messages"], start=1):
        item = {
            **message,
            "position": position,
            "delay_text": describe_delay(message.get("delay"), position),
        }
        if message["channel"] == Channel.SMS:
            item.update(sms_counts(message.get("body") or message["variants"][0]["body"]))
        messages.append(item)
    try:
        live = audience_live(
            practice=wiz.practice,
            trigger=draft["trigger"],
            filters=draft["filters"],
            at=timezone.now(),
            can_see_financials=can_see_financials,
        )
    except (KeyError, TypeError, ValueError):  # a draft whose audience cannot be computed yet
        live = {"count": None, "filters": [], "trigger": ""}
    overlap = None
    if live["count"] is not None:
        overlap = same_trigger_overlaps(
            practice=wiz.practice,
            trigger=draft["trigger"],
            filters=draft["filters"],
            at=timezone.now(),
            campaign_id=wiz.campaign.pk if wiz.campaign else None,
        )
    count = live["count"]
    name = draft["name"] or "this campaign"
    if count is None:
        question = f"Turn on “{name}” now? It starts messaging the patients its trigger matches."
    else:
        question = (
            f"Turn on “{name}” now? {count:,} patient{pluralize(count)} "
            f"match{'es' if count == 1 else ''} it now and would get its messages from its "
            "next run."
        )
        for other in (overlap or {}).get("campaigns", []):
            if other["shared"] and not draft["exclude_recent_days"]:
                question += (
                    f" {other['shared']:,} of them also get “{other['campaign'].name}”, "
                    "which has the same trigger."
                )
    return {
        "activate_question": question,
        "overlap": overlap,
        "live": live,
        "trigger_text": describe_trigger(draft["trigger"]),
        "schedule_text": describe_schedule(draft["schedule"], draft["trigger"]),
        "continuous": bool(draft["trigger"]) and is_continuous(draft["trigger"]),
        "filter_lines": describe_filters(draft["filters"], can_see_financials=can_see_financials),
        "review_messages": messages,
        "goal_text": describe_goal(draft["goal"]),
        "holdout_percent": draft.get("holdout_percent") or 0,
        "attribution_days": draft.get("attribution_days") or 30,
        "stale": stale(draft, wiz.campaign),
        **draft_forecast_context(
            practice=wiz.practice, campaign=wiz.campaign, draft=draft, now=timezone.now()
        ),
    }


def _step_review(request: PracticeRequest, wiz: Wizard) -> HttpResponse:
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        action = posted_action(request)[0]
        if action == "back" or action.startswith("go_"):
            return wiz.move("review", action)
        if action == "skip_recent":  # the overlap warning's suggestion, in one click
            form = SkipRecentForm(request.POST)
            if form.is_valid():
                wiz.save(exclude_recent_days=form.cleaned_data["days"])
                days = form.cleaned_data["days"]
                flash.success(
                    request,
                    f"Patients messaged by another drip in the last {days} day{pluralize(days)} "
                    "are skipped.",
                )
                return redirect(wiz.url("step", "review"))
            errors = {"review": [f"Days: {error}" for error in form.errors.get("days", [])]}
            return wiz.render("review", {**_review_context(request, wiz), "errors": errors}, 400)
        current = wiz.campaign.enabled if wiz.campaign else False
        enabled = True if action == "activate" else current
        if action == "activate" and not current and not is_confirmed(request):
            return confirmation_page(
                request,
                question=_review_context(request, wiz)["activate_question"],
                detail="Quiet hours and opt-outs apply; you can turn it off again at any time.",
                confirm_label="Save and activate",
                cancel_url=wiz.url("step", "review"),
                danger=False,
            )
        serializer = CampaignSerializer(data=draft_campaign_data(wiz.draft, enabled=enabled))
        if serializer.is_valid():
            try:
                if wiz.campaign:
                    campaign = services.campaign_update(
                        campaign=wiz.campaign, data=serializer.validated_data, actor=request.user
                    )
                else:
                    campaign = services.campaign_create(
                        practice=wiz.practice, data=serializer.validated_data, actor=request.user
                    )
            except ValidationError as error:
                errors = {"review": [error_text(error)]}
            else:
                draft_discard(request.session, practice_id=wiz.practice.pk, campaign=wiz.campaign)
                state = "on" if campaign.enabled else "off"
                flash.success(request, f"Saved “{campaign.name}”; it is {state}.")
                return redirect("campaigns:drip_list")
        else:
            errors = _review_errors(errors_by_step(serializer.errors))
    context = {**_review_context(request, wiz), "errors": errors}
    return wiz.render("review", context, 400 if errors else 200)
