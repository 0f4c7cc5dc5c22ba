"""Patients pages. The list and detail arrive with the patients issue."""

from __future__ import annotations

from django.http import HttpResponse

from trackstat.models import Role
from trackstat.pages import not_yet_built
from trackstat.tenancy import PracticeRequest, role_required


@role_required(Role.USER)
def patient_list(request: PracticeRequest) -> HttpResponse:
    return not_yet_built(request, title="Patients", issue="patients and EMR sync")
