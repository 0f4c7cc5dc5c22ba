"""REST API v1 routes of the messaging app (mounted at /api/v1/)."""

from django.urls import path

from messaging import apis

urlpatterns = [
    path("messages", apis.MessageListApi.as_view(), name="api_messages"),
]
