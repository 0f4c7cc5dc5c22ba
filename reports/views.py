"""The Report tab (DESIGN §8, §9): every role may view it; Managers and Administrators may
download it as CSV (§3). The numbers come from the roll-ups (``reports.selectors``)."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_safe

from campaigns.models import Campaign
from reports.chart import daily_chart
from reports.export import report_csv
from reports.selectors import campaign_report, practice_overview, refreshed_at, report_range
from trackstat.models import Role
from trackstat.tenancy import PracticeRequest, has_role, role_required


def _campaign(request: PracticeRequest, campaign_id: int) -> Campaign:
    campaign = get_object_or_404(Campaign.objects.filter(practice=request.practice), pk=campaign_id)
    campaign.practice = request.practice
    return campaign


@require_safe
@role_required(Role.USER)
def index(request: PracticeRequest) -> HttpResponse:
    """Every campaign with its status bell and headline numbers over a date range."""
    date_from, date_to, errors = report_range(request.GET, request.practice)
    headlines = (
        [] if errors else practice_overview(request.practice, date_from=date_from, date_to=date_to)
    )
    return render(
        request,
        "reports/index.html",
        {
            "headlines": headlines,
            "date_from": date_from,
            "date_to": date_to,
            "errors": errors,
            "refreshed_at": refreshed_at(),
        },
    )


@require_safe
@role_required(Role.USER)
def campaign(request: PracticeRequest, campaign_id: int) -> HttpResponse:
    """One campaign over a date range: totals, per step, skipped by reason, a daily chart."""
    the_campaign = _campaign(request, campaign_id)
    date_from, date_to, errors = report_range(request.GET, request.practice)
    report = None if errors else campaign_report(the_campaign, date_from=date_from, date_to=date_to)
    return render(
        request,
        "reports/campaign.html",
        {
            "campaign": the_campaign,
            "report": report,
            "chart": daily_chart(report.days) if report else None,
            "date_from": date_from,
            "date_to": date_to,
            "errors": errors,
            "can_download": has_role(request, Role.MANAGER),
        },
        status=400 if errors else 200,
    )


@require_safe
@role_required(Role.MANAGER)
def campaign_csv(request: PracticeRequest, campaign_id: int) -> HttpResponse:
    """The report as CSV: ``part=summary`` (totals, steps, skipped), ``part=daily`` or
    ``part=arms`` (the experiment's arms)."""
    the_campaign = _campaign(request, campaign_id)
    date_from, date_to, errors = report_range(request.GET, request.practice)
    part = request.GET.get("part", "summary")
    if part not in ("summary", "daily", "arms"):
        errors = {**errors, "part": ["Choose summary, daily or arms."]}
    if errors:
        text = "; ".join(f"{name}: {' '.join(messages)}" for name, messages in errors.items())
        return HttpResponse(text, status=400, content_type="text/plain; charset=utf-8")
    report = campaign_report(the_campaign, date_from=date_from, date_to=date_to)
    response = HttpResponse(report_csv(report, part=part), content_type="text/csv; charset=utf-8")
    filename = f"campaign-{the_campaign.pk}-{part}-{date_from}-to-{date_to}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
