"""Campaign pages (User Plus and above, DESIGN §3 and §9): drip campaigns and their five-step
wizard, blast campaigns with their audience preview, and the template library.

Views parse input with ``campaigns.forms`` (whose validation is ``campaigns.spec``), call one
selector or service and render. The wizard keeps its draft in the session
(``campaigns.wizard``) and writes the campaign only at step 5. The parts htmx swaps are
``{% partialdef %}`` blocks rendered alone when ``request.htmx``; every form also works as a
plain POST without JavaScript.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from django.contrib import messages as flash
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from campaigns import services, wizard
from campaigns.forms import (
    MAX_STEPS,
    MERGE_FIELD_CHOICES,
    TRIGGER_DEFAULTS,
    BlastForm,
    EnabledForm,
    FiltersForm,
    FolderForm,
    GoalForm,
    IncludedForm,
    NameForm,
    ScheduleForm,
    TemplateForm,
    TriggerForm,
    error_messages,
    step_row,
    step_rows_from_post,
    steps_validate,
)
from campaigns.models import BlastExclusion, Campaign, CampaignKind, MessageTemplate
from campaigns.render import render_message
from campaigns.selectors import (
    audience,
    campaign_has_history,
    campaign_list,
    template_folders,
    template_visible,
)
from campaigns.sms import non_gsm7_characters, sms_segments
from campaigns.spec import MERGE_FIELDS, CampaignSerializer, is_continuous, sanitize_email_html
from messaging.models import Channel
from patients import selectors as patient_selectors
from patients.models import UPCOMING_STATUSES, Appointment, Patient
from trackstat.models import Practice, Role
from trackstat.tenancy import PracticeRequest, has_role, role_required

RECIPIENTS_PER_PAGE = 50
ACTION_RE = re.compile(r"^(?P<name>[a-z_]+)(?:-(?P<index>\d+))?$")
SMS_FIELD_RE = re.compile(r"^(step-\d+-)?body$")


def _render(
    request: PracticeRequest, template: str, context: dict, status: int = 200
) -> HttpResponse:
    """Render with times shown in the practice's time zone."""
    with timezone.override(request.practice.tz):
        return render(request, template, context, status=status)


def _wants_partial(request: PracticeRequest) -> bool:
    # A history restore (back button after the cache expired) needs the whole page.
    return bool(request.htmx) and not request.htmx.history_restore_request


def _campaign_or_404(request: PracticeRequest, campaign_id: int, kind: str) -> Campaign:
    return get_object_or_404(
        Campaign, pk=campaign_id, practice=request.practice, kind=kind, archived_at__isnull=True
    )


def _can_see_financials(request: PracticeRequest) -> bool:
    return has_role(request, Role.MANAGER)


def _error_text(error: ValidationError) -> str:
    return " ".join(error.messages)


def _sms_context(text: str) -> dict:
    return {"sms": sms_segments(text), "non_gsm": non_gsm7_characters(text)}


def _audience_live(
    practice: Practice, trigger: dict | None, filters: dict | None, *, can_see_financials: bool
) -> dict:
    """The live audience count (at now) and the selected-filters summary of a draft."""
    now = timezone.now()
    live = {
        "at": now.astimezone(practice.tz),
        "filters": wizard.describe_filters(filters, can_see_financials=can_see_financials),
        "trigger": wizard.describe_trigger(trigger) if trigger else "",
        "count": None,
    }
    if trigger is not None and filters is not None:
        unsaved = Campaign(
            practice=practice, kind=CampaignKind.DRIP, trigger=trigger, filters=filters
        )
        live["count"] = audience(unsaved, at=now).count()
    return live


def _preview_appointment(patient: Patient) -> Appointment | None:
    """The appointment a preview uses: the patient's next upcoming one, else their latest."""
    appointments = Appointment.objects.filter(patient=patient).select_related("provider")
    upcoming = appointments.filter(start__gt=timezone.now(), status__in=UPCOMING_STATUSES)
    return upcoming.order_by("start").first() or appointments.order_by("-start").first()


def _test_send(request: PracticeRequest, wiz: Wizard, row: dict) -> tuple[str, int]:
    """Send one step to the signed-in user's own phone or email; (note, status)."""
    validated = steps_validate([row])
    if validated is None:
        return "Fix this message before sending a test.", 400
    step = validated[0]
    query = request.POST.get("preview_patient", "").strip()
    patient = (
        patient_selectors.patient_list(practice=wiz.practice, query=query).first()
        if query
        else None
    )
    try:
        message = services.step_test_send(
            practice=wiz.practice,
            user=request.user,
            channel=step["channel"],
            subject=step.get("subject", ""),
            body=step["body"],
            patient=patient,
        )
    except ValidationError as error:
        return " ".join(error.messages), 400
    return f"Test {message.get_status_display().lower()}: sent to {message.to}.", 200


def _preview(practice: Practice, query: str, row: dict) -> dict:
    """A message rendered for a real patient (the one ``query`` finds, else the first)."""
    patients = patient_selectors.patient_list(practice=practice, query=query)
    patient = patients.first()
    if patient is None:
        return {"error": f"No patient matches “{query}”." if query else "No patients yet."}
    appointment = _preview_appointment(patient)
    subject, body = render_message(
        channel=row["channel"],
        subject=row["subject"],
        body=row["body"],
        patient=patient,
        practice=practice,
        appointment=appointment,
    )
    preview = {
        "patient": patient,
        "appointment": appointment,
        "appointment_local": appointment.start.astimezone(practice.tz) if appointment else None,
        "channel": row["channel"],
        "subject": subject,
        "body": body,
    }
    if row["channel"] == Channel.EMAIL:
        preview["html"] = sanitize_email_html(body)
    else:
        preview.update(_sms_context(body))
    return preview


# --- Drip campaigns: the list ------------------------------------------------------------------


def _drip_row(campaign: Campaign) -> dict:
    steps = list(campaign.steps.all())
    return {
        "campaign": campaign,
        "trigger": wizard.describe_trigger(campaign.trigger),
        "steps": len(steps),
        "sms": sum(step.channel == Channel.SMS for step in steps),
        "email": sum(step.channel == Channel.EMAIL for step in steps),
    }


@require_safe
@role_required(Role.USER_PLUS)
def drip_list(request: PracticeRequest) -> HttpResponse:
    campaigns = campaign_list(practice=request.practice, kind=CampaignKind.DRIP)
    new_draft = request.session.get(wizard.draft_key(request.practice.pk, None))
    context = {"rows": [_drip_row(c) for c in campaigns], "new_draft": new_draft}
    return _render(request, "campaigns/drip_list.html", context)


@require_POST
@role_required(Role.USER_PLUS)
def drip_toggle(request: PracticeRequest, campaign_id: int) -> HttpResponse:
    """The on/off switch of a row: sets the state the button asked for."""
    campaign = _campaign_or_404(request, campaign_id, CampaignKind.DRIP)
    form = EnabledForm(request.POST)
    error = ""
    if form.is_valid():
        services.campaign_set_enabled(
            campaign=campaign, enabled=form.cleaned_data["enabled"], actor=request.user
        )
    else:
        error = "Use true or false."
    if _wants_partial(request):
        campaign = campaign_list(practice=request.practice).get(pk=campaign.pk)
        context = {"row": _drip_row(campaign), "row_error": error}
        return _render(
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
        return _render(request, "campaigns/confirm_delete.html", context, status=400)
    if request.method == "POST":
        name = campaign.name
        try:
            outcome = services.campaign_delete(campaign=campaign, actor=request.user)
        except ValidationError as error:
            context["error"] = _error_text(error)
            return _render(request, "campaigns/confirm_delete.html", context, status=400)
        wizard.draft_discard(request.session, practice_id=request.practice.pk, campaign=campaign)
        if outcome == "archived":
            flash.success(request, f"Archived “{name}”: it has stopped; its report is kept.")
        else:
            flash.success(request, f"Deleted “{name}”.")
        return redirect(back)
    return _render(request, "campaigns/confirm_delete.html", context)


# --- Drip campaigns: the wizard ----------------------------------------------------------------


@dataclass
class Wizard:
    """One run of the wizard: a new campaign (``campaign`` None) or an existing one."""

    request: PracticeRequest
    campaign: Campaign | None
    draft: dict = field(init=False)

    def __post_init__(self):
        self.draft = wizard.draft_get(
            self.request.session, practice_id=self.practice.pk, campaign=self.campaign
        )

    @property
    def practice(self) -> Practice:
        return self.request.practice

    def url(self, name: str, step: str | None = None) -> str:
        args = [self.campaign.pk] if self.campaign else []
        prefix = "campaigns:drip_edit_" if self.campaign else "campaigns:drip_new_"
        if step:
            return reverse(prefix + "step", args=[*args, step])
        return reverse(prefix + name, args=args)

    def save(self, **parts) -> None:
        self.draft = wizard.draft_save(
            self.request.session, practice_id=self.practice.pk, campaign=self.campaign, **parts
        )

    def move(self, step: str, action: str) -> HttpResponseRedirect:
        """After a step saved: Back or Next."""
        index = wizard.STEP_NAMES.index(step) + (-1 if action == "back" else 1)
        index = min(max(index, 0), len(wizard.STEP_NAMES) - 1)
        return redirect(self.url("step", wizard.STEP_NAMES[index]))

    def render(
        self, step: str, context: dict, status: int = 200, partial: str = ""
    ) -> HttpResponse:
        steps = [
            {"name": name, "label": label, "number": n, "url": self.url("step", name)}
            for n, (name, label) in enumerate(wizard.STEPS, start=1)
        ]
        context = {
            "wizard": self,
            "campaign": self.campaign,
            "draft": self.draft,
            "step": step,
            "steps": steps,
            "step_number": wizard.STEP_NAMES.index(step) + 1,
            "title": f"Edit “{self.campaign.name}”" if self.campaign else "New drip campaign",
            "urls": {
                "options": self.url("trigger_options"),
                "count": self.url("audience_count"),
                "discard": self.url("discard"),
                "step": self.url("step", step),
                "sms_count": reverse("campaigns:sms_count"),
            },
            **context,
        }
        template = f"campaigns/wizard_{step}.html"
        return _render(self.request, template + partial, context, status)


def _wizard(request: PracticeRequest, campaign_id: int | None) -> Wizard:
    campaign = _campaign_or_404(request, campaign_id, CampaignKind.DRIP) if campaign_id else None
    return Wizard(request, campaign)


@require_safe
@role_required(Role.USER_PLUS)
def drip_new(request: PracticeRequest) -> HttpResponse:
    return redirect("campaigns:drip_new_step", "name")


@require_safe
@role_required(Role.USER_PLUS)
def drip_edit(request: PracticeRequest, campaign_id: int) -> HttpResponse:
    _campaign_or_404(request, campaign_id, CampaignKind.DRIP)
    return redirect("campaigns:drip_edit_step", campaign_id, "name")


@require_POST
@role_required(Role.USER_PLUS)
def drip_discard(request: PracticeRequest, campaign_id: int | None = None) -> HttpResponse:
    """Throw the draft away (a new campaign's, or unsaved changes to a campaign)."""
    wiz = _wizard(request, campaign_id)
    wizard.draft_discard(request.session, practice_id=wiz.practice.pk, campaign=wiz.campaign)
    flash.success(request, "The draft was discarded.")
    return redirect("campaigns:drip_list")


@role_required(Role.USER_PLUS)
def drip_wizard(request: PracticeRequest, step: str, campaign_id: int | None = None):
    """Steps 1 to 5 (GET shows the step with the draft's values; POST saves the step's part)."""
    wiz = _wizard(request, campaign_id)
    handler = {
        "name": _step_name,
        "audience": _step_audience,
        "messages": _step_messages,
        "goals": _step_goals,
        "review": _step_review,
    }[step]
    return handler(request, wiz)


def _action(request: PracticeRequest) -> tuple[str, int | None]:
    match = ACTION_RE.match(request.POST.get("action", "next"))
    if not match:
        return "next", None
    index = match.group("index")
    return match.group("name"), int(index) if index is not None else None


# Step 1


def _step_name(request: PracticeRequest, wiz: Wizard) -> HttpResponse:
    status = 200
    if request.method == "POST":
        form = NameForm(request.POST)
        if form.is_valid():
            wiz.save(name=form.cleaned_data["name"].strip())
            return wiz.move("name", _action(request)[0])
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
    for name, value in TRIGGER_DEFAULTS.get(initial.get("type"), {}).items():
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
            can_see_financials=_can_see_financials(request),
            prefix="filter",
        ),
        "schedule_form": ScheduleForm(
            data,
            initial=ScheduleForm.initial_from(draft["schedule"], draft["exclude_recent_days"]),
            prefix="schedule",
        ),
    }


def _step_audience(request: PracticeRequest, wiz: Wizard) -> HttpResponse:
    status = 200
    can_see_financials = _can_see_financials(request)
    if request.method == "POST":
        forms = _audience_forms(request, wiz, request.POST)
        action = _action(request)[0]
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
                )
                return wiz.move("audience", action)
            status = 400
            live = _audience_live(
                wiz.practice,
                trigger.trigger,
                filters.filters,
                can_see_financials=can_see_financials,
            )
    else:
        forms = _audience_forms(request, wiz)
        live = _audience_live(
            wiz.practice,
            wiz.draft["trigger"],
            wiz.draft["filters"],
            can_see_financials=can_see_financials,
        )
    return wiz.render("audience", {**forms, "live": live}, status)


@require_safe
@role_required(Role.USER_PLUS)
def drip_trigger_options(request: PracticeRequest, campaign_id: int | None = None):
    """The options of the chosen trigger type (htmx, when the type or ``when`` changes)."""
    wiz = _wizard(request, campaign_id)
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
    wiz = _wizard(request, campaign_id)
    forms = _audience_forms(request, wiz, request.GET)
    trigger, filters = forms["trigger_form"], forms["filters_form"]
    trigger_ok, filters_ok = trigger.is_valid(), filters.is_valid()
    live = _audience_live(
        wiz.practice,
        trigger.trigger if trigger_ok else None,
        filters.filters if filters_ok else None,
        can_see_financials=_can_see_financials(request),
    )
    if not trigger_ok:
        live["problem"] = "Complete the trigger's options to see the count."
    elif not filters_ok:
        live["problem"] = "Correct the filters to see the count."
    return wiz.render("audience", {"live": live}, partial="#audience-live")


# Step 3


def _template_choice(request: PracticeRequest) -> MessageTemplate | None:
    try:
        template_id = int(request.POST.get("template", ""))
    except ValueError:
        return None
    return template_visible(practice=request.practice).filter(pk=template_id).first()


def _messages_context(request: PracticeRequest, wiz: Wizard, rows: list[dict]) -> dict:
    for position, row in enumerate(rows, start=1):
        row["position"] = position
        row["index"] = position - 1
        row.update(_sms_context(row["body"]))
    return {
        "rows": rows,
        "folders": template_folders(practice=wiz.practice),
        "merge_fields": MERGE_FIELD_CHOICES,
        "delay_units": ["minutes", "hours", "days", "weeks", "months"],
        "preview_patient": request.POST.get("preview_patient", ""),
        "max_steps": MAX_STEPS,
        "later_steps": wizard.describe_later_steps(wiz.draft["schedule"], wiz.draft["trigger"]),
    }


def _appointment_field_errors(wiz: Wizard, messages: list[dict]) -> list[dict]:
    """The whole-campaign check on messages (e.g. ``{{AppointmentDate}}`` with a birthday
    trigger), from ``CampaignSerializer`` with the draft's trigger."""
    data = wizard.draft_campaign_data(wiz.draft, enabled=False)
    data.update(name=data["name"] or "draft", messages=messages, goal=None)
    serializer = CampaignSerializer(data=data)
    if serializer.is_valid():
        return []
    found = serializer.errors.get("messages")
    return found if isinstance(found, list) and found and isinstance(found[0], dict) else []


def _step_messages(request: PracticeRequest, wiz: Wizard) -> HttpResponse:
    status, note, focus, preview = 200, "", None, None
    if request.method != "POST":
        rows = [step_row(message) for message in wiz.draft["messages"]]
        return wiz.render("messages", _messages_context(request, wiz, rows))

    rows = step_rows_from_post(request.POST)
    action, index = _action(request)
    if index is not None and not 0 <= index < len(rows):
        raise Http404("No such message step.")
    if action in ("next", "back"):
        messages = steps_validate(rows)
        if messages is not None and action == "next" and not messages:
            note, messages = "Add at least one message.", None
        if messages and action == "next":
            for row, errors in zip(rows, _appointment_field_errors(wiz, messages), strict=False):
                row["errors"] = {k: error_messages(v) for k, v in errors.items()}
            if any(row["errors"] for row in rows):
                messages = None
        if messages is not None:
            wiz.save(messages=messages)
            return wiz.move("messages", action)
        status = 400
    elif action in ("add_sms", "add_email", "add_template"):
        if len(rows) >= MAX_STEPS:
            note, status = f"A campaign has at most {MAX_STEPS} messages.", 400
        elif action == "add_template":
            template = _template_choice(request)
            if template is None:
                note, status = "Choose a template to start from.", 400
            else:
                rows.append(
                    step_row(
                        {
                            "channel": template.channel,
                            "subject": template.subject,
                            "body": template.body,
                            "delay": {"value": 1 if rows else 0, "unit": "days"},
                        }
                    )
                )
                focus = len(rows) - 1
        else:
            channel = Channel.SMS if action == "add_sms" else Channel.EMAIL
            rows.append(
                step_row({"channel": channel, "delay": {"value": 1 if rows else 0, "unit": "days"}})
            )
            focus = len(rows) - 1
    elif action == "remove" and index is not None:
        rows.pop(index)
    elif action in ("up", "down") and index is not None:
        other = index - 1 if action == "up" else index + 1
        if 0 <= other < len(rows):
            rows[index], rows[other] = rows[other], rows[index]
            focus = other
    elif action == "insert" and index is not None:
        name = request.POST.get(f"step-{index}-merge_field", "")
        if name in MERGE_FIELDS:
            rows[index]["body"] += f"{{{{{name}}}}}"
        focus = index
        context = _messages_context(request, wiz, rows)
        if _wants_partial(request):
            context["row"] = rows[index]
            return wiz.render("messages", context, partial="#step-card")
    elif action == "test" and index is not None:
        note, status = _test_send(request, wiz, rows[index])
        focus = index
    elif action == "preview" and index is not None:
        preview = _preview(
            wiz.practice, request.POST.get("preview_patient", "").strip(), rows[index]
        )
        preview["index"] = index
        if _wants_partial(request):
            return wiz.render("messages", {"preview": preview}, partial="#preview")
        focus = index
    context = _messages_context(request, wiz, rows)
    context.update(note=note, focus=focus, preview=preview)
    return wiz.render("messages", context, status)


@require_POST
@role_required(Role.USER_PLUS)
def sms_count(request: PracticeRequest) -> HttpResponse:
    """Length and segments of an SMS body as typed (htmx, on input)."""
    name = request.GET.get("field", "body")
    if not SMS_FIELD_RE.match(name):
        return HttpResponse("Unknown field.", status=400)
    context = _sms_context(request.POST.get(name, "").replace("\r\n", "\n"))
    return _render(request, "campaigns/sms_count.html", context)


# Step 4


def _step_goals(request: PracticeRequest, wiz: Wizard) -> HttpResponse:
    several = len(wiz.draft["messages"]) > 1
    status = 200
    if request.method == "POST":
        action = _action(request)[0]
        if not several:
            wiz.save(goal=None)
            return wiz.move("goals", action)
        form = GoalForm(request.POST, practice=wiz.practice, current=wiz.draft["goal"])
        if form.is_valid():
            wiz.save(goal=form.goal)
            return wiz.move("goals", action)
        status = 400
    else:
        form = GoalForm(practice=wiz.practice, current=wiz.draft["goal"])
    return wiz.render("goals", {"form": form, "several": several}, status)


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
                            lines.setdefault(step, []).append(f"Message {position}, {part}: {text}")
                continue
            label = name.replace("_", " ")
            for text in error_messages(detail):
                lines.setdefault(step, []).append(f"{label.capitalize()}: {text}")
    return lines


def _review_context(request: PracticeRequest, wiz: Wizard) -> dict:
    draft = wiz.draft
    can_see_financials = _can_see_financials(request)
    messages = []
    for position, message in enumerate(draft["messages"], start=1):
        item = {
            **message,
            "position": position,
            "delay_text": wizard.describe_delay(message.get("delay"), position),
        }
        if message["channel"] == Channel.SMS:
            item.update(_sms_context(message["body"]))
        messages.append(item)
    try:
        live = _audience_live(
            wiz.practice, draft["trigger"], draft["filters"], can_see_financials=can_see_financials
        )
    except (KeyError, TypeError, ValueError):  # a draft whose audience cannot be computed yet
        live = {"count": None, "filters": [], "trigger": ""}
    return {
        "live": live,
        "trigger_text": wizard.describe_trigger(draft["trigger"]),
        "schedule_text": wizard.describe_schedule(draft["schedule"], draft["trigger"]),
        "continuous": bool(draft["trigger"]) and is_continuous(draft["trigger"]),
        "filter_lines": wizard.describe_filters(
            draft["filters"], can_see_financials=can_see_financials
        ),
        "review_messages": messages,
        "goal_text": wizard.describe_goal(draft["goal"]),
        "stale": wizard.stale(draft, wiz.campaign),
    }


def _step_review(request: PracticeRequest, wiz: Wizard) -> HttpResponse:
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        action = _action(request)[0]
        if action == "back":
            return wiz.move("review", "back")
        current = wiz.campaign.enabled if wiz.campaign else False
        enabled = True if action == "activate" else current
        serializer = CampaignSerializer(data=wizard.draft_campaign_data(wiz.draft, enabled=enabled))
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
                errors = {"review": [_error_text(error)]}
            else:
                wizard.draft_discard(
                    request.session, practice_id=wiz.practice.pk, campaign=wiz.campaign
                )
                state = "on" if campaign.enabled else "off"
                flash.success(request, f"Saved “{campaign.name}”; it is {state}.")
                return redirect("campaigns:drip_list")
        else:
            errors = _review_errors(wizard.errors_by_step(serializer.errors))
    context = {**_review_context(request, wiz), "errors": errors}
    return wiz.render("review", context, 400 if errors else 200)


# --- Blast campaigns ---------------------------------------------------------------------------


def blast_status(campaign: Campaign) -> str:
    if campaign.sent_at:
        return "sent"
    return "scheduled" if campaign.enabled else "draft"


@require_safe
@role_required(Role.USER_PLUS)
def blast_list(request: PracticeRequest) -> HttpResponse:
    tz = request.practice.tz
    rows = [
        {
            "campaign": campaign,
            "status": blast_status(campaign),
            "send_at": campaign.send_at.astimezone(tz) if campaign.send_at else None,
            "sent_at": campaign.sent_at.astimezone(tz) if campaign.sent_at else None,
            "step": next(iter(campaign.steps.all()), None),
        }
        for campaign in campaign_list(practice=request.practice, kind=CampaignKind.BLAST)
    ]
    return _render(request, "campaigns/blast_list.html", {"rows": rows})


def _blast_form(request: PracticeRequest, campaign: Campaign | None) -> HttpResponse:
    practice = request.practice
    current = (
        services.campaign_as_json(campaign)
        if campaign
        else {"filters": {"status": "active"}, "messages": []}
    )
    can_see_financials = _can_see_financials(request)
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
        if form.is_valid() and filters_form.is_valid():
            data = form.cleaned_data
            serializer = CampaignSerializer(
                data={
                    "name": data["name"],
                    "kind": CampaignKind.BLAST,
                    "filters": filters_form.filters,
                    "messages": [
                        {
                            "channel": data["channel"],
                            "subject": data["subject"],
                            "body": data["body"],
                        }
                    ],
                    "send_at": data["send_at"],
                }
            )
            if serializer.is_valid():
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
                    form.add_error(None, _error_text(error))
                else:
                    flash.success(request, f"Saved “{campaign.name}”. Check its recipients.")
                    return redirect("campaigns:blast_detail", campaign.pk)
            else:
                _blast_errors(form, serializer.errors)
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
    context = {
        "campaign": campaign,
        "form": form,
        "filters_form": filters_form,
        "merge_fields": MERGE_FIELD_CHOICES,
        "sms_count_url": reverse("campaigns:sms_count"),
        "tz_name": practice.time_zone,
        **_sms_context(body),
    }
    return _render(request, "campaigns/blast_form.html", context, status=status)


def _blast_errors(form: BlastForm, errors: dict) -> None:
    for name, detail in errors.items():
        if name == "messages":
            for item in detail if isinstance(detail, list) else [detail]:
                if isinstance(item, dict):
                    for part, texts in item.items():
                        target = part if part in ("channel", "subject", "body") else None
                        for text in error_messages(texts):
                            form.add_error(target, text)
                else:
                    form.add_error("body", str(item))
            continue
        target = name if name in ("name", "send_at") else None
        for text in error_messages(detail):
            form.add_error(target, text if target else f"{name}: {text}")


def _read_only_blast(request: PracticeRequest, campaign: Campaign) -> HttpResponse:
    flash.error(request, "This blast has been sent and is read-only.")
    return redirect("campaigns:blast_detail", campaign.pk)


@role_required(Role.USER_PLUS)
def blast_new(request: PracticeRequest) -> HttpResponse:
    return _blast_form(request, None)


@role_required(Role.USER_PLUS)
def blast_edit(request: PracticeRequest, campaign_id: int) -> HttpResponse:
    campaign = _campaign_or_404(request, campaign_id, CampaignKind.BLAST)
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
    if not campaign.sent_at:
        recipients = audience(campaign, at=now).select_related("primary_provider")
        page = Paginator(recipients, RECIPIENTS_PER_PAGE).get_page(request.GET.get("page"))
        removed = (
            BlastExclusion.objects.filter(campaign=campaign)
            .select_related("patient")
            .order_by("patient__last_name", "patient__first_name", "patient_id")
        )
        if step and page.object_list:
            sample = _preview(
                practice,
                page.object_list[0].external_id,
                {"channel": step.channel, "subject": step.subject, "body": step.body},
            )
    context = {
        "campaign": campaign,
        "status": blast_status(campaign),
        "step": step,
        "page": page,
        "removed": removed,
        "sample": sample,
        "error": error,
        "filter_lines": wizard.describe_filters(
            campaign.filters, can_see_financials=_can_see_financials(request)
        ),
        "send_at": campaign.send_at.astimezone(practice.tz) if campaign.send_at else None,
        "sent_at": campaign.sent_at.astimezone(practice.tz) if campaign.sent_at else None,
        "send_at_passed": bool(campaign.send_at and campaign.send_at <= now),
    }
    return _render(request, "campaigns/blast_detail.html", context, status=status)


@require_safe
@role_required(Role.USER_PLUS)
def blast_detail(request: PracticeRequest, campaign_id: int) -> HttpResponse:
    """The blast and its audience preview: who would get it now, page by page."""
    return _blast_detail(request, _campaign_or_404(request, campaign_id, CampaignKind.BLAST))


@require_POST
@role_required(Role.USER_PLUS)
def blast_recipient(request: PracticeRequest, campaign_id: int, patient_id: int) -> HttpResponse:
    """Remove one recipient from a blast before it goes out, or put them back."""
    campaign = _campaign_or_404(request, campaign_id, CampaignKind.BLAST)
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
            error = _error_text(problem)
    if _wants_partial(request):
        included = not BlastExclusion.objects.filter(campaign=campaign, patient=patient).exists()
        context = {
            "campaign": campaign,
            "patient": patient,
            "included": included,
            "row_error": error,
            "page_number": request.POST.get("page", ""),
        }
        return _render(
            request,
            "campaigns/blast_detail.html#recipient-row",
            context,
            status=400 if error else 200,
        )
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
    campaign = _campaign_or_404(request, campaign_id, CampaignKind.BLAST)
    form = EnabledForm(request.POST)
    if not form.is_valid():
        return _blast_detail(request, campaign, error="Use true or false.", status=400)
    if campaign.sent_at:
        return _blast_detail(request, campaign, error="This blast has been sent.", status=400)
    enabled = form.cleaned_data["enabled"]
    try:
        campaign = services.campaign_set_enabled(
            campaign=campaign, enabled=enabled, actor=request.user
        )
    except ValidationError as error:
        return _blast_detail(request, campaign, error=_error_text(error), status=400)
    if not enabled:
        flash.success(request, f"“{campaign.name}” is a draft again; it will not be sent.")
    elif campaign.send_at and campaign.send_at > timezone.now():
        local = campaign.send_at.astimezone(request.practice.tz)
        flash.success(request, f"“{campaign.name}” is scheduled for {local:%Y-%m-%d %H:%M %Z}.")
    else:
        flash.success(request, f"“{campaign.name}” will be sent within the next minute.")
    return redirect("campaigns:blast_detail", campaign.pk)


# --- Templates ---------------------------------------------------------------------------------


def _template_list_page(
    request: PracticeRequest, folder_form: FolderForm | None = None, status: int = 200
) -> HttpResponse:
    folders = list(template_folders(practice=request.practice))
    context = {
        "practice_folders": [f for f in folders if not f.is_master],
        "master_folders": [f for f in folders if f.is_master],
        "can_create_folders": has_role(request, Role.MANAGER),
        "folder_form": folder_form or FolderForm(),
    }
    return _render(request, "campaigns/template_list.html", context, status=status)


@require_safe
@role_required(Role.USER_PLUS)
def template_list(request: PracticeRequest) -> HttpResponse:
    return _template_list_page(request)


def _template_form(request: PracticeRequest, template: MessageTemplate | None) -> HttpResponse:
    practice = request.practice
    status = 200
    if request.method == "POST":
        form = TemplateForm(request.POST, practice=practice)
        if form.is_valid():
            data = form.cleaned_data
            try:
                saved = services.template_save(
                    practice=practice, folder=data["folder"], data=data, template=template
                )
            except ValidationError as error:
                form.add_error(None, _error_text(error))
            else:
                flash.success(request, f"Saved the template “{saved.name}”.")
                return redirect("campaigns:template_list")
        status = 400
    elif template:
        form = TemplateForm(initial=TemplateForm.initial_from(template), practice=practice)
    else:
        form = TemplateForm(initial={"folder": request.GET.get("folder")}, practice=practice)
    context = {
        "form": form,
        "template": template,
        "has_folders": form.fields["folder"].queryset.exists(),
        "merge_fields": MERGE_FIELD_CHOICES,
        "sms_count_url": reverse("campaigns:sms_count"),
        **_sms_context(form["body"].value() or ""),
    }
    return _render(request, "campaigns/template_form.html", context, status=status)


@role_required(Role.USER_PLUS)
def template_new(request: PracticeRequest) -> HttpResponse:
    return _template_form(request, None)


@role_required(Role.USER_PLUS)
def template_edit(request: PracticeRequest, template_id: int) -> HttpResponse:
    """Only the practice's own templates: the master library is read-only (404 here)."""
    template = get_object_or_404(MessageTemplate, pk=template_id, practice=request.practice)
    return _template_form(request, template)


@require_POST
@role_required(Role.MANAGER)
def template_folder_new(request: PracticeRequest) -> HttpResponse:
    form = FolderForm(request.POST)
    if form.is_valid():
        try:
            folder = services.template_folder_create(
                practice=request.practice, name=form.cleaned_data["name"]
            )
        except ValidationError as error:
            form.add_error("name", _error_text(error))
        else:
            flash.success(request, f"Created the folder “{folder.name}”.")
            return redirect("campaigns:template_list")
    return _template_list_page(request, folder_form=form, status=400)
