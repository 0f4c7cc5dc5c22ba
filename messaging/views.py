"""Messaging pages: the Inbox (threads per patient, replies, canned replies) and the Sandbox
(what the sandbox provider "sent").

The parts htmx swaps are ``{% partialdef %}`` blocks of the page template, rendered alone when
``wants_partial``; every form also works as a plain POST (redirect back) without JavaScript.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from messaging import inbox as inbox_services
from messaging.forms import CannedReplyForm, CannedReplyPickForm, ReplyForm
from messaging.models import CannedReply
from messaging.selectors import sandbox_messages
from patients.models import Patient
from trackstat.confirm import confirmation_page, is_confirmed
from trackstat.htmx import wants_partial
from trackstat.models import Role
from trackstat.tenancy import PracticeRequest, has_role, role_required


def _inbox_context(request: PracticeRequest, canned_form=None) -> dict:
    current = request.GET.get("filter", "all")
    if current not in inbox_services.THREAD_FILTERS:
        current = "all"
    try:
        number = int(request.GET.get("page", 1))
    except ValueError:
        number = 1
    return {
        "page": inbox_services.inbox_threads(
            practice=request.practice, filter=current, page=number
        ),
        "filters": [(key, label) for key, (label, _sql) in inbox_services.THREAD_FILTERS.items()],
        "current": current,
        "canned_replies": inbox_services.canned_replies(practice=request.practice),
        "canned_form": canned_form or CannedReplyForm(),
        "can_edit_canned": has_role(request, Role.MANAGER),
    }


@require_safe
@role_required(Role.USER)
def inbox(request: PracticeRequest) -> HttpResponse:
    """The threads, newest activity first, 30 a page, with filters."""
    return render(request, "messaging/inbox.html", _inbox_context(request))


def _thread_context(request: PracticeRequest, patient: Patient, reply_form=None) -> dict:
    practice = request.practice
    queryset = inbox_services.canned_replies(practice=practice)
    pick_form = CannedReplyPickForm(request.GET or None, queryset=queryset)
    if reply_form is None:
        initial = {}
        if pick_form.is_bound and pick_form.is_valid():
            initial["body"] = pick_form.cleaned_data["canned"].body
        reply_form = ReplyForm(initial=initial)
    return {
        "patient": patient,
        "items": inbox_services.inbox_thread_items(practice=practice, patient=patient),
        "reply_form": reply_form,
        "pick_form": pick_form,
        "has_canned": queryset.exists(),
    }


@require_safe
@role_required(Role.USER)
def inbox_thread(request: PracticeRequest, patient_id: int) -> HttpResponse:
    """One patient's thread, oldest first; opening it marks their messages read."""
    patient = get_object_or_404(Patient, pk=patient_id, practice=request.practice)
    inbox_services.inbox_thread_mark_read(
        practice=request.practice, patient=patient, now=timezone.now()
    )
    return render(request, "messaging/inbox_thread.html", _thread_context(request, patient))


@require_safe
@role_required(Role.USER)
def inbox_unknown(request: PracticeRequest, token: str) -> HttpResponse:
    """The messages of a number that matches no patient (read only: no one to reply to),
    named in the URL by its opaque token, never the number."""
    practice = request.practice
    number = inbox_services.inbox_unknown_thread_number(practice=practice, token=token)
    if number is None:
        raise Http404("No such thread.")
    items = inbox_services.inbox_thread_items(practice=practice, number=number)
    if not items:
        raise Http404("No messages from this number.")
    inbox_services.inbox_thread_mark_read(practice=practice, number=number, now=timezone.now())
    return render(
        request,
        "messaging/inbox_thread.html",
        {"patient": None, "number": number, "items": items},
    )


@require_POST
@role_required(Role.USER)
def inbox_reply(request: PracticeRequest, patient_id: int) -> HttpResponse:
    """Text a reply to the patient now; the thread shows it with its status."""
    patient = get_object_or_404(Patient, pk=patient_id, practice=request.practice)
    form = ReplyForm(request.POST)
    status = 200
    if form.is_valid():
        try:
            inbox_services.inbox_reply_send(
                practice=request.practice,
                patient=patient,
                body=form.cleaned_data["body"],
                user=request.user,
            )
        except ValidationError as error:
            for field, errors in error.message_dict.items():
                for message in errors:
                    form.add_error("body" if field == "body" else None, message)
            status = 400
        else:
            if not wants_partial(request):
                return redirect("messaging:thread", patient_id=patient.pk)
            form = ReplyForm()
    else:
        status = 400
    context = _thread_context(request, patient, reply_form=form)
    template = (
        "messaging/inbox_thread.html#thread"
        if wants_partial(request)
        else "messaging/inbox_thread.html"
    )
    return render(request, template, context, status=status)


@require_POST
@role_required(Role.MANAGER)
def canned_reply_add(request: PracticeRequest) -> HttpResponse:
    form = CannedReplyForm(request.POST)
    if not form.is_valid():
        return render(
            request, "messaging/inbox.html", _inbox_context(request, canned_form=form), status=400
        )
    inbox_services.canned_reply_create(
        practice=request.practice,
        title=form.cleaned_data["title"],
        body=form.cleaned_data["body"],
    )
    messages.success(request, "Canned reply added.")
    return redirect(reverse("messaging:inbox") + "#canned-replies")


@require_POST
@role_required(Role.MANAGER)
def canned_reply_remove(request: PracticeRequest, pk: int) -> HttpResponse:
    canned = get_object_or_404(CannedReply, pk=pk, practice=request.practice)
    if not is_confirmed(request):
        return confirmation_page(
            request,
            question=f"Delete the canned reply “{canned.title}”?",
            detail="Staff can no longer pick it in the Inbox.",
            confirm_label="Delete",
            cancel_url=reverse("messaging:inbox") + "#canned-replies",
        )
    inbox_services.canned_reply_delete(practice=request.practice, canned_reply=canned)
    messages.success(request, "Canned reply deleted.")
    return redirect(reverse("messaging:inbox") + "#canned-replies")


@role_required(Role.USER)
def sandbox(request: PracticeRequest) -> HttpResponse:
    """Messages the sandbox provider recorded for this practice instead of sending them."""
    page = Paginator(sandbox_messages(practice=request.practice), 50).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "messaging/sandbox.html",
        {
            "page": page,
            "sms_provider": settings.SMS_PROVIDER,
            "email_provider": settings.EMAIL_PROVIDER,
        },
    )
