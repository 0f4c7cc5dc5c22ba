"""REST API v1 routes of the reports app (mounted at /api/v1/)."""

from django.urls import path

from reports import apis

urlpatterns = [
    path(
        "campaigns/<int:campaign_id>/report",
        apis.CampaignReportApi.as_view(),
        name="api_campaign_report",
    ),
]
