"""Messaging pages: the Sandbox (what the sandbox provider "sent"). The Inbox arrives with the
messaging issue."""

from __future__ import annotations

from django.conf import settings
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render

from messaging.selectors import sandbox_messages
from trackstat.models import Role
from trackstat.pages import not_yet_built
from trackstat.tenancy import PracticeRequest, role_required


@role_required(Role.USER)
def inbox(request: PracticeRequest) -> HttpResponse:
    return not_yet_built(request, title="Inbox", issue="messaging")


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
            "tz": request.practice.tz,
        },
    )
