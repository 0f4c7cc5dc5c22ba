"""Step 3 of the wizard, the messages: add (blank or from a template), reorder and remove
steps, insert merge fields, preview a step for a real patient and send a test of it."""

from __future__ import annotations

from django.contrib import messages as flash
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from campaigns import services
from campaigns.content.merge_fields import MERGE_FIELDS
from campaigns.content.sms import sms_counts
from campaigns.forms.fields import error_messages
from campaigns.forms.messages import (
    MAX_STEPS,
    MERGE_FIELD_CHOICES,
    step_row,
    step_rows_from_post,
    steps_validate,
    variant_add,
    variant_remove,
)
from campaigns.language.describe import describe_later_steps
from campaigns.language.spec import CONFIRMATION_TRIGGERS, CampaignSerializer
from campaigns.models import MessageTemplate
from campaigns.selectors import message_preview, template_folders, template_visible
from campaigns.views.wizard_state import Wizard, draft_campaign_data, posted_action
from messaging.models import Channel
from patients import selectors as patient_selectors
from trackstat.htmx import wants_partial
from trackstat.tenancy import PracticeRequest


def _test_send(request: PracticeRequest, wiz: Wizard, row: dict) -> tuple[str, int]:
    """Send one step to the signed-in user's own phone or email; (note, status)."""
    validated = steps_validate([row])
    if validated is None:
        return "Fix this message before sending a test.", 400
    step = validated[0]
    # A variant step's test is its first variant (preview shows them all).
    text = step["variants"][0] if step.get("variants") else step
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
            subject=text.get("subject", ""),
            body=text["body"],
            patient=patient,
        )
    except ValidationError as error:
        if any(e.code == "no_phone" for e in error.error_dict.get("channel", [])):
            link = format_html(
                'Add your mobile phone on <a href="{}">your profile page</a> to get test texts.',
                reverse("profile"),
            )
            return link, 400
        return " ".join(error.messages), 400
    return f"Test {message.get_status_display().lower()}: sent to {message.to}.", 200


def _template_choice(request: PracticeRequest) -> MessageTemplate | None:
    try:
        template_id = int(request.POST.get("template", ""))
    except ValueError:
        return None
    return template_visible(practice=request.practice).filter(pk=template_id).first()


def _preview(wiz: Wizard, request: PracticeRequest, row: dict) -> dict:
    """The step rendered for the preview patient; a variant step shows each variant."""
    query = request.POST.get("preview_patient", "").strip()
    if not row.get("variants"):
        return message_preview(
            practice=wiz.practice, query=query, message=row, at=timezone.now(), draft=wiz.draft
        )
    previews = []
    for variant in row["variants"]:
        one = message_preview(
            practice=wiz.practice,
            query=query,
            message={
                "channel": row["channel"],
                "subject": variant["subject"],
                "body": variant["body"],
            },
            at=timezone.now(),
            draft=wiz.draft,
        )
        if "error" in one:
            return one
        previews.append({**one, "variant": variant["name"], "weight": variant["weight"]})
    return {"variants": previews}


def _messages_context(request: PracticeRequest, wiz: Wizard, rows: list[dict]) -> dict:
    question = wiz.practice.confirmation_wording("confirmation_request_text")
    for position, row in enumerate(rows, start=1):
        row["position"] = position
        row["index"] = position - 1
        # The counter counts what goes out: the question too, when the text asks.
        row.update(
            sms_counts(f"{row['body']}\n{question}" if row.get("ask_confirmation") else row["body"])
        )
    return {
        "can_ask_confirmation": (wiz.draft.get("trigger") or {}).get("type")
        in CONFIRMATION_TRIGGERS,
        "confirmation_question": question,
        "rows": rows,
        "folders": template_folders(practice=wiz.practice),
        "merge_fields": MERGE_FIELD_CHOICES,
        "delay_units": ["minutes", "hours", "days", "weeks", "months"],
        "preview_patient": request.POST.get("preview_patient", ""),
        "max_steps": MAX_STEPS,
        "later_steps": describe_later_steps(wiz.draft["schedule"], wiz.draft["trigger"]),
    }


def _appointment_field_errors(wiz: Wizard, messages: list[dict]) -> list[dict]:
    """The whole-campaign check on messages (e.g. ``{{AppointmentDate}}`` with a birthday
    trigger), from ``CampaignSerializer`` with the draft's trigger."""
    data = draft_campaign_data(wiz.draft, enabled=False)
    data.update(name=data["name"] or "draft", messages=messages, goal=None)
    serializer = CampaignSerializer(data=data)
    if serializer.is_valid():
        return []
    found = serializer.errors.get("messages")
    return found if isinstance(found, list) and found and isinstance(found[0], dict) else []


def messages_step(request: PracticeRequest, wiz: Wizard) -> HttpResponse:
    status, note, focus, preview = 200, "", None, None
    if request.method != "POST":
        typed = wiz.draft.get("message_rows")
        rows = (
            [{**row, "errors": {}} for row in typed]
            if typed is not None
            else [step_row(message) for message in wiz.draft["messages"]]
        )
        context = _messages_context(request, wiz, rows)
        focus = request.GET.get("focus", "")
        context["focus"] = int(focus) if focus.isdigit() else None
        return wiz.render("messages", context)

    rows = step_rows_from_post(request.POST)
    action, index = posted_action(request)
    if index is not None and not 0 <= index < len(rows):
        raise Http404("No such message step.")
    if action in ("next", "back") or action.startswith("go_"):
        messages = steps_validate(rows)
        if messages is not None and action == "next" and not messages:
            note, messages = "Add at least one message.", None
        if messages and action == "next":
            for row, errors in zip(rows, _appointment_field_errors(wiz, messages), strict=False):
                row["errors"] = {k: error_messages(v) for k, v in errors.items()}
            if any(row["errors"] for row in rows):
                messages = None
        if messages is not None:
            wiz.save(messages=messages, message_rows=None)
            return wiz.move("messages", action)
        _keep_typed(wiz, rows)
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
            # Into the message's text (a variant step's last variant).
            target = rows[index]["variants"][-1] if rows[index]["variants"] else rows[index]
            target["body"] += f"{{{{{name}}}}}"
        focus = index
        context = _messages_context(request, wiz, rows)
        if wants_partial(request):
            _keep_typed(wiz, rows)
            context["row"] = rows[index]
            return wiz.render("messages", context, partial="#step-card")
    elif action == "add_variant" and index is not None:
        note = variant_add(rows[index])
        status = 400 if note else 200
        focus = index
    elif action == "remove_variant" and index is not None:
        variant_remove(rows[index])
        focus = index
    elif action == "test" and index is not None:
        note, status = _test_send(request, wiz, rows[index])
        focus = index
    elif action == "preview" and index is not None:
        preview = _preview(wiz, request, rows[index])
        preview["index"] = index
        if wants_partial(request):
            _keep_typed(wiz, rows)
            return wiz.render("messages", {"preview": preview}, partial="#preview")
        focus = index
    _keep_typed(wiz, rows)
    if status == 200 and action != "preview" and not wants_partial(request):
        # Saved in the draft: answer with a redirect, so a reload shows the rows as they are
        # (and never repeats the action: a second message added, a second test sent).
        if note:
            flash.success(request, note)
        url = wiz.url("step", "messages")
        return redirect(f"{url}?focus={focus}#step-{focus}" if focus is not None else url)
    context = _messages_context(request, wiz, rows)
    context.update(note=note, focus=focus, preview=preview)
    return wiz.render("messages", context, status)


def _keep_typed(wiz: Wizard, rows: list[dict]) -> None:
    """Keep the rows as typed (valid or not) in the draft until the step is left."""
    typed = [{key: value for key, value in row.items() if key != "errors"} for row in rows]
    wiz.save(message_rows=typed)
