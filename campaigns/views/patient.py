"""The patient page's "Campaigns — why or why not?" panel (DESIGN §9), served by campaigns.

Registered with the patient page in ``CampaignsConfig.ready`` (``patients.panels``): htmx loads
the panel into the patient page, and each campaign's explanation when it is opened; without
JavaScript the same URLs answer whole pages. Campaign features are User Plus and above
(DESIGN §3); another practice's patient or campaign is a 404.
"""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_safe

from campaigns.language.describe import describe_trigger
from campaigns.models import Campaign, CampaignKind
from campaigns.selectors import campaign_list, explain
from patients.models import Patient
from patients.panels import PatientPanel
from patients.selectors import patient_queryset
from trackstat.htmx import wants_partial
from trackstat.models import Role
from trackstat.tenancy import PracticeRequest, role_required

TEMPLATE = "campaigns/patient_why.html"

WHY_PANEL = PatientPanel(
    key="why",
    title="Campaigns — why or why not?",
    link_text="Why or why not? — check each drip campaign for this patient",
    url_name="campaigns:patient_why",
    role=Role.USER_PLUS,
    position=10,
)


def _patient_or_404(request: PracticeRequest, patient_id: int) -> Patient:
    return get_object_or_404(patient_queryset(practice=request.practice), pk=patient_id)


def _panel_context(request: PracticeRequest, patient: Patient, why: dict | None = None) -> dict:
    return {
        "patient": patient,
        "why_campaigns": campaign_list(practice=request.practice, kind=CampaignKind.DRIP),
        "why": why,
    }


@require_safe
@role_required(Role.USER_PLUS)
def patient_why(request: PracticeRequest, patient_id: int) -> HttpResponse:
    """The practice's drip campaigns, each to be explained for this patient."""
    patient = _patient_or_404(request, patient_id)
    template = f"{TEMPLATE}#panel" if wants_partial(request) else TEMPLATE
    return render(request, template, _panel_context(request, patient))


def _why_detail(value) -> str:
    """A check's detail (a date sentence, a filter's value) in one line."""
    if value is None or value == "":
        return ""
    if isinstance(value, dict):
        return "; ".join(f"{k.replace('_', ' ')}: {_why_detail(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_why_detail(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


@require_safe
@role_required(Role.USER_PLUS)
def patient_campaign_why(
    request: PracticeRequest, patient_id: int, campaign_id: int
) -> HttpResponse:
    """Why this patient would or would not enter a drip campaign now (``explain``)."""
    patient = _patient_or_404(request, patient_id)
    campaign = get_object_or_404(
        Campaign.objects.prefetch_related("steps"),
        pk=campaign_id,
        practice=request.practice,
        kind=CampaignKind.DRIP,
    )
    result = explain(campaign, patient, at=timezone.now())
    for check in result["checks"]:
        check["detail_text"] = _why_detail(check["detail"])
        is_trigger = check["check"].startswith("trigger:")
        check["label"] = (
            f"Trigger: {describe_trigger(campaign.trigger)}"
            if is_trigger
            else check["check"].removeprefix("filter: ").capitalize()
        )
    why = {"campaign": campaign, "result": result}
    if wants_partial(request):
        return render(request, f"{TEMPLATE}#why-result", {"why": why})
    return render(request, TEMPLATE, _panel_context(request, patient, why))
