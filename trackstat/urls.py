"""Root URLs."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from trackstat import apis, views

account_urls = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("profile/", views.profile, name="profile"),
    path("password-reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "password-reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "password-reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
]

settings_urls = [
    path("users/", views.settings_users, name="settings_users"),
    path("users/<int:membership_id>/role/", views.member_role, name="settings_member_role"),
    path("users/<int:membership_id>/remove/", views.member_remove, name="settings_member_remove"),
    path("practice/", views.settings_practice, name="settings_practice"),
    path("policy/", views.settings_policy, name="settings_policy"),
    path("providers/", views.settings_providers, name="settings_providers"),
    path("api-keys/", views.settings_api_keys, name="settings_api_keys"),
    path("webhooks/", views.settings_webhooks, name="settings_webhooks"),
    path(
        "webhooks/deliveries/<int:delivery_id>/resend/",
        views.webhook_resend_view,
        name="settings_webhook_resend",
    ),
    path(
        "api-keys/<int:api_key_id>/revoke/",
        views.api_key_revoke_view,
        name="settings_api_key_revoke",
    ),
]

api_urls = [
    path("practice", apis.practice_detail_api, name="api_practice"),
    path("events", apis.events_api, name="api_events"),
    path("webhooks", apis.WebhookListApi.as_view(), name="api_webhooks"),
    path("webhooks/<int:webhook_id>", apis.WebhookDetailApi.as_view(), name="api_webhook"),
]

handler400 = "trackstat.api_errors.bad_request"
handler404 = "trackstat.api_errors.page_not_found"
handler500 = "trackstat.api_errors.server_error"

urlpatterns = [
    path("", include("reports.today_urls")),
    # Browsers ask for /favicon.ico whatever the page says: the same icon.
    path("favicon.ico", views.favicon, name="favicon"),
    path("accounts/", include(account_urls)),
    path("practice/switch/", views.practice_switch_view, name="practice_switch"),
    path("settings/", include(settings_urls)),
    path("campaigns/", include("campaigns.urls")),
    path("patients/", include("patients.urls")),
    path("inbox/", include("messaging.urls")),
    path("reports/", include("reports.urls")),
    path("api/v1/", include(api_urls)),
    path("api/v1/", include("patients.api_urls")),
    path("api/v1/", include("campaigns.api_urls")),
    path("api/v1/", include("messaging.api_urls")),
    path("api/v1/", include("reports.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path("api/docs/", views.api_docs, name="api_docs"),
    path("admin/", admin.site.urls),
    path("", include("messaging.public_urls")),
]
