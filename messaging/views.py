"""Messaging pages. The Inbox arrives with the messaging issue."""

from __future__ import annotations

from django.http import HttpResponse

from trackstat.models import Role
from trackstat.pages import not_yet_built
from trackstat.tenancy import PracticeRequest, role_required


@role_required(Role.USER)
def inbox(request: PracticeRequest) -> HttpResponse:
    return not_yet_built(request, title="Inbox", issue="messaging")
