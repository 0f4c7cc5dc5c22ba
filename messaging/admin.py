"""Django admin for the operator: stored provider webhook events (``WebhookEvent``).

The operator sees which events failed and why (never their payload: an inbound SMS's holds a
phone number and the patient's words) and may send failed ones back to the sweep.
"""

from __future__ import annotations

from django.contrib import admin

from messaging.models import WebhookEvent
from messaging.webhook_events import webhook_events_retry


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("pending", "Pending"), ("applied", "Applied"), ("failed", "Failed")]

    def queryset(self, request, queryset):
        match self.value():
            case "pending":
                return queryset.filter(processed_at__isnull=True, failed_at__isnull=True)
            case "applied":
                return queryset.filter(processed_at__isnull=False)
            case "failed":
                return queryset.filter(failed_at__isnull=False)
        return queryset


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "practice", "received_at", "processed_at", "failed_at", "error"]
    list_filter = [StateFilter, "kind"]
    fields = [
        "kind",
        "practice",
        "event_key",
        "received_at",
        "processed_at",
        "attempts",
        "failed_at",
        "error",
    ]
    readonly_fields = fields
    actions = ["retry"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Apply the selected failed events again")
    def retry(self, request, queryset):
        count = webhook_events_retry(event_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} failed event(s) go back to the sweep.")
