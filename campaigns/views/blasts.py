"""Blast campaigns: the list, the form (name, one message, filters, when), and the detail page
with its audience preview, where staff take recipients off before it goes out and enable it."""

from __future__ import annotations

import datetime as dt

from django.contrib import messages as flash
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.views.decorators.http import require_POST, require_safe

from campaigns import services
from campaigns.content.sms import sms_counts
from campaigns.forms.audience import FiltersForm
from campaigns.forms.blasts import BlastForm, IncludedForm
from campaigns.forms.fields import EnabledForm, error_messages
from campaigns.forms.messages import MERGE_FIELD_CHOICES
from campaigns.language.describe import describe_filters
from campaigns.language.spec import CampaignSerializer
from campaigns.models import Campaign, CampaignKind
from campaigns.selectors import (
    blast_goes_out_at,
    blast_includes,
    blast_recipients,
    blast_removed,
    campaign_list,
    message_preview,
    send_forecast,
)
from campaigns.views.shared import campaign_or_404, error_text, sees_financials
from patients.models import Patient
from trackstat.confirm import confirmation_page, is_confirmed
from trackstat.htmx import wants_partial
from trackstat.models import Role
from trackstat.tenancy import PracticeRequest, role_required

RECIPIENTS_PER_PAGE = 50


def blast_status(campaign: Campaign) -> str:
    if campaign.sent_at:
        return "sent"
    return "scheduled" if campaign.enabled else "draft"


def _scheduled_ahead(campaign: Campaign) -> bool:
    return bool(campaign.send_at and campaign.send_at > timezone.now())


def _send_at_passed(campaign: Campaign) -> bool:
    return bool(campaign.send_at and campaign.send_at <= timezone.now())


def _when(instant: dt.datetime) -> str:
    return date_format(timezone.localtime(instant), "M j, g:i A T")


def quiet_hours_note(campaign: Campaign) -> str:
    """When the texts will actually go out, if quiet hours hold them past the chosen time."""
    now = timezone.now()
    due = max(campaign.send_at or now, now)
    goes = blast_goes_out_at(campaign, now=now)
    if goes - due < dt.timedelta(minutes=1):
        return ""
    practice = campaign.practice
    window = (
        f"{date_format(practice.sending_window_start, 'g:i A')} to "
        f"{date_format(practice.sending_window_end, 'g:i A')}"
    )
    return (
        f"{'That time' if campaign.send_at and campaign.send_at > now else 'Now'} is outside "
        f"the practice's sending hours ({window}): the messages go out at {_when(goes)}."
    )


def blast_enable_question(campaign: Campaign, count: int) -> str:
    """What enabling this blast does, with the number it reaches: the confirmation's words."""
    patients = f"{count:,} patient{pluralize(count)}"
    if _scheduled_ahead(campaign):
        question = f"Schedule “{campaign.name}” for {_when(campaign.send_at)} to {patients}?"
    else:
        question = f"Send “{campaign.name}” to {patients} now?"
    note = quiet_hours_note(campaign)
    return f"{question} {note}" if note else question


@require_safe
@role_required(Role.USER_PLUS)
def blast_list(request: PracticeRequest) -> HttpResponse:
    rows = [
        {
            "campaign": campaign,
            "status": blast_status(campaign),
            "step": next(iter(campaign.steps.all()), None),
        }
        for campaign in campaign_list(practice=request.practice, kind=CampaignKind.BLAST)
    ]
    return render(request, "campaigns/blast_list.html", {"rows": rows})


def _blast_form(request: PracticeRequest, campaign: Campaign | None) -> HttpResponse:
    practice = request.practice
    current = (
        services.campaign_as_json(campaign)
        if campaign
        else {"filters": {"status": "active"}, "messages": []}
    )
    can_see_financials = sees_financials(request)
    now = timezone.now()
    status = 200
    if request.method == "POST":
        form = BlastForm(request.POST, practice=practice, now=now)
        filters_form = FiltersForm(
            request.POST,
            practice=practice,
            current=current["filters"],
            can_see_financials=can_see_financials,
            prefix="filter",
        )
        forms_valid = [form.is_valid(), filters_form.is_valid()]
        # One round: the campaign validators judge what the forms could read, so one
        # submission shows every error (a field the forms refused keeps only its own).
        data = form.cleaned_data
        serializer = CampaignSerializer(
            data={
                "name": data.get("name", ""),
                "kind": CampaignKind.BLAST,
                "filters": filters_form.filters or {},
                "messages": [
                    {
                        "channel": data.get("channel", ""),
                        "subject": data.get("subject", ""),
                        "body": data.get("body", ""),
                    }
                ],
                "send_at": data.get("send_at"),
                "purpose": data.get("purpose"),
                "priority": data.get("priority", 0),
            }
        )
        serializer_valid = serializer.is_valid()
        if all(forms_valid) and serializer_valid:
            validated = dict(serializer.validated_data)
            try:
                if campaign:
                    validated.pop("enabled")  # editing keeps it scheduled or not
                    campaign = services.campaign_update(
                        campaign=campaign, data=validated, actor=request.user
                    )
                else:
                    campaign = services.campaign_create(
                        practice=practice, data=validated, actor=request.user
                    )
            except ValidationError as error:
                form.add_error(None, error_text(error))
            else:
                flash.success(request, f"Saved “{campaign.name}”. Check its recipients.")
                return redirect("campaigns:blast_detail", campaign.pk)
        elif not serializer_valid:
            _blast_errors(form, serializer.errors, filters_shown=bool(filters_form.errors))
        status = 400
    else:
        form = BlastForm(
            initial=BlastForm.initial_from(current, practice), practice=practice, now=now
        )
        filters_form = FiltersForm(
            practice=practice,
            current=current["filters"],
            can_see_financials=can_see_financials,
            prefix="filter",
        )
    body = form["body"].value() or ""
    forecast = []
    if campaign is not None and not campaign.sent_at:
        at = campaign.send_at if campaign.send_at and campaign.send_at > now else now
        forecast = send_forecast(campaign, blast_recipients(campaign, at=now), at=at)
    context = {
        "forecast": forecast,
        "campaign": campaign,
        "form": form,
        "filters_form": filters_form,
        "merge_fields": MERGE_FIELD_CHOICES,
        "sms_count_url": reverse("campaigns:sms_count"),
        "tz_name": practice.time_zone,
        **sms_counts(body),
    }
    return render(request, "campaigns/blast_form.html", context, status=status)


def _blast_errors(form: BlastForm, errors: dict, *, filters_shown: bool = False) -> None:
    """The campaign validators' errors beside the form's, except on a field the form refused
    (its own message says it) and on the filters when their form shows its own errors."""

    def add(target: str | None, text: str) -> None:
        if target is None or target not in form.errors:
            form.add_error(target, text)

    for name, detail in errors.items():
        if name == "filters" and filters_shown:
            continue
        if name == "messages":
            for item in detail if isinstance(detail, list) else [detail]:
                if isinstance(item, dict):
                    for part, texts in item.items():
                        target = part if part in ("channel", "subject", "body") else None
                        for text in error_messages(texts):
                            add(target, text)
                else:
                    add("body", str(item))
            continue
        target = name if name in ("name", "send_at") else None
        if target is None and name in ("purpose", "priority"):
            target = name
        for text in error_messages(detail):
            add(target, text)


def _read_only_blast(request: PracticeRequest, campaign: Campaign) -> HttpResponse:
    flash.error(request, "This blast has been sent and is read-only.")
    return redirect("campaigns:blast_detail", campaign.pk)


@role_required(Role.USER_PLUS)
def blast_new(request: PracticeRequest) -> HttpResponse:
    return _blast_form(request, None)


@role_required(Role.USER_PLUS)
def blast_edit(request: PracticeRequest, campaign_id: int) -> HttpResponse:
    campaign = campaign_or_404(request, campaign_id, CampaignKind.BLAST)
    if campaign.sent_at:
        if request.method == "POST":
            return _blast_detail(
                request, campaign, error="This blast has been sent and is read-only.", status=400
            )
        return _read_only_blast(request, campaign)
    return _blast_form(request, campaign)


def _blast_detail(
    request: PracticeRequest, campaign: Campaign, *, error: str = "", status: int = 200
) -> HttpResponse:
    practice = request.practice
    now = timezone.now()
    step = campaign.steps.first()
    page = removed = None
    sample = None
    forecast = []
    if not campaign.sent_at:
        recipients = blast_recipients(campaign, at=now)
        page = Paginator(recipients, RECIPIENTS_PER_PAGE).get_page(request.GET.get("page"))
        removed = blast_removed(campaign)
        forecast = send_forecast(
            campaign,
            recipients,
            at=campaign.send_at if campaign.send_at and campaign.send_at > now else now,
        )
        if step and page.object_list:
            sample = message_preview(
                practice=practice,
                query=page.object_list[0].external_id,
                message={"channel": step.channel, "subject": step.subject, "body": step.body},
                at=now,
            )
    recipient_count = page.paginator.count if page else 0
    context = {
        "recipient_count": recipient_count,
        "removed_count": len(removed) if removed is not None else 0,
        "enable_question": blast_enable_question(campaign, recipient_count),
        "campaign": campaign,
        "status": blast_status(campaign),
        "step": step,
        "page": page,
        "removed": removed,
        "sample": sample,
        "error": error,
        "filter_lines": describe_filters(
            campaign.filters, can_see_financials=sees_financials(request)
        ),
        "send_at": campaign.send_at,
        "sent_at": campaign.sent_at,
        "send_at_passed": _send_at_passed(campaign),
        "quiet_hours_note": "" if campaign.sent_at else quiet_hours_note(campaign),
        "forecast": forecast,
    }
    return render(request, "campaigns/blast_detail.html", context, status=status)


@require_safe
@role_required(Role.USER_PLUS)
def blast_detail(request: PracticeRequest, campaign_id: int) -> HttpResponse:
    """The blast and its audience preview: who would get it now, page by page."""
    return _blast_detail(request, campaign_or_404(request, campaign_id, CampaignKind.BLAST))


@require_POST
@role_required(Role.USER_PLUS)
def blast_recipient(request: PracticeRequest, campaign_id: int, patient_id: int) -> HttpResponse:
    """Remove one recipient from a blast before it goes out, or put them back."""
    campaign = campaign_or_404(request, campaign_id, CampaignKind.BLAST)
    patient = get_object_or_404(Patient, pk=patient_id, practice=request.practice)
    form = IncludedForm(request.POST)
    error = ""
    if not form.is_valid():
        error = "Use true or false."
    else:
        try:
            services.blast_recipient_set(
                campaign=campaign,
                patient=patient,
                included=form.cleaned_data["included"],
                actor=request.user,
            )
        except ValidationError as problem:
            error = error_text(problem)
    if wants_partial(request):
        included = blast_includes(campaign, patient)
        recipient_count = blast_recipients(campaign, at=timezone.now()).count()
        context = {
            "campaign": campaign,
            "patient": patient,
            "included": included,
            "row_error": error,
            "page_number": request.POST.get("page", ""),
            # The numbers elsewhere on the page, swapped out of band with the row.
            "oob": True,
            "status": blast_status(campaign),
            "send_at": campaign.send_at,
            "send_at_passed": _send_at_passed(campaign),
            "recipient_count": recipient_count,
            "removed_count": blast_removed(campaign).count(),
            "enable_question": blast_enable_question(campaign, recipient_count),
        }
        parts = ["recipients-heading", "removed-heading"]
        if not campaign.sent_at:
            parts.append("enable-form")

        def part(name: str) -> str:
            return render_to_string(f"campaigns/blast_detail.html#{name}", context, request=request)

        # The out-of-band parts ride in a <template>: beside a table row, htmx parses the
        # answer as table content, where a heading or a form would be torn apart.
        oob = "".join(part(name) for name in parts)
        html = f"{part('recipient-row')}<template>{oob}</template>"
        return HttpResponse(html, status=400 if error else 200)
    if error:
        return _blast_detail(request, campaign, error=error, status=400)
    verb = "put back on" if form.cleaned_data["included"] else "removed from"
    flash.success(request, f"{patient} was {verb} the recipient list.")
    url = reverse("campaigns:blast_detail", args=[campaign.pk])
    page = request.POST.get("page", "")
    return redirect(f"{url}?page={page}" if page.isdigit() else url)


@require_POST
@role_required(Role.USER_PLUS)
def blast_enable(request: PracticeRequest, campaign_id: int) -> HttpResponse:
    """Schedule (or send as soon as possible) a blast, or take it back while not yet sent."""
    campaign = campaign_or_404(request, campaign_id, CampaignKind.BLAST)
    form = EnabledForm(request.POST)
    if not form.is_valid():
        return _blast_detail(request, campaign, error="Use true or false.", status=400)
    if campaign.sent_at:
        return _blast_detail(request, campaign, error="This blast has been sent.", status=400)
    enabled = form.cleaned_data["enabled"]
    if enabled and not is_confirmed(request):
        count = blast_recipients(campaign, at=timezone.now()).count()
        return confirmation_page(
            request,
            question=blast_enable_question(campaign, count),
            detail="Opt-outs and quiet hours apply when it goes out.",
            confirm_label="Schedule" if _scheduled_ahead(campaign) else "Send now",
            cancel_url=reverse("campaigns:blast_detail", args=[campaign.pk]),
        )
    try:
        campaign = services.campaign_set_enabled(
            campaign=campaign, enabled=enabled, actor=request.user
        )
    except ValidationError as error:
        return _blast_detail(request, campaign, error=error_text(error), status=400)
    if not enabled:
        flash.success(request, f"“{campaign.name}” is a draft again; it will not be sent.")
    elif campaign.send_at and campaign.send_at > timezone.now():
        local = timezone.localtime(campaign.send_at)
        flash.success(request, f"“{campaign.name}” is scheduled for {local:%Y-%m-%d %H:%M %Z}.")
    else:
        flash.success(request, f"“{campaign.name}” will be sent within the next minute.")
    return redirect("campaigns:blast_detail", campaign.pk)
