"""Public URLs (no sign-in): tracked links and unsubscribe links reached from messages, and
the provider webhooks (DESIGN §7: these paths are a contract)."""

from django.urls import path

from messaging import link_views, webhooks

urlpatterns = [
    path("l/<str:token>", link_views.tracked_link, name="tracked_link"),
    path("unsubscribe/<str:token>/", link_views.unsubscribe, name="unsubscribe"),
    path("webhooks/twilio/status", webhooks.twilio_status, name="webhook_twilio_status"),
    path("webhooks/twilio/inbound", webhooks.twilio_inbound, name="webhook_twilio_inbound"),
    path("webhooks/sendgrid/events", webhooks.sendgrid_events, name="webhook_sendgrid_events"),
]
