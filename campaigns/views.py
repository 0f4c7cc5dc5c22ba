"""Campaign pages (User Plus and above). The builder itself arrives with its issue."""

from __future__ import annotations

from django.http import HttpResponse

from trackstat.models import Role
from trackstat.pages import not_yet_built
from trackstat.tenancy import PracticeRequest, role_required


@role_required(Role.USER_PLUS)
def drip_list(request: PracticeRequest) -> HttpResponse:
    return not_yet_built(request, title="Drip Campaigns", issue="the campaign builder")


@role_required(Role.USER_PLUS)
def blast_list(request: PracticeRequest) -> HttpResponse:
    return not_yet_built(request, title="Blast Campaigns", issue="the campaign builder")


@role_required(Role.USER_PLUS)
def template_list(request: PracticeRequest) -> HttpResponse:
    return not_yet_built(request, title="Templates", issue="the campaign builder")
