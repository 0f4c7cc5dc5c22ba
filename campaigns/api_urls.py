"""REST API v1 routes of the campaigns app (mounted at /api/v1/)."""

from django.urls import path

from campaigns import apis

urlpatterns = [
    path("campaigns", apis.CampaignListApi.as_view(), name="api_campaigns"),
    path("campaigns/<int:campaign_id>", apis.CampaignDetailApi.as_view(), name="api_campaign"),
    path(
        "campaigns/<int:campaign_id>/enable",
        apis.CampaignEnableApi.as_view(),
        name="api_campaign_enable",
    ),
    path(
        "campaigns/<int:campaign_id>/disable",
        apis.CampaignDisableApi.as_view(),
        name="api_campaign_disable",
    ),
    path(
        "campaigns/<int:campaign_id>/audience",
        apis.CampaignAudienceApi.as_view(),
        name="api_campaign_audience",
    ),
    path(
        "campaigns/<int:campaign_id>/forecast",
        apis.CampaignForecastApi.as_view(),
        name="api_campaign_forecast",
    ),
    path(
        "campaigns/<int:campaign_id>/explain",
        apis.CampaignExplainApi.as_view(),
        name="api_campaign_explain",
    ),
]
