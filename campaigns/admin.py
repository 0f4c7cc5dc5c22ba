"""Django admin for the operator: campaigns (read-mostly) and the template library.

Campaigns change through their services (validated and audited), so the admin shows them and
only turns them on or off or removes them, with the same services the pages use: removing
archives a campaign that has history (its messages and report stay) and refuses a sent blast;
the admin's own delete, which would cascade, is off. The master library (folders without a
practice) is managed here.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from campaigns.forms.messages import message_validate
from campaigns.models import Campaign, MessageStep, MessageTemplate, TemplateFolder
from campaigns.services import campaign_delete, campaign_set_enabled

CAMPAIGN_FIELDS = [
    "practice",
    "name",
    "kind",
    "enabled",
    "enabled_at",
    "trigger",
    "filters",
    "schedule",
    "exclude_recent_days",
    "goal",
    "send_at",
    "sent_at",
    "archived_at",
    "created_by",
    "created_at",
    "updated_at",
]


class MessageStepInline(admin.TabularInline):
    model = MessageStep
    extra = 0
    can_delete = False
    fields = ["position", "channel", "subject", "body", "delay_value", "delay_unit"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "practice", "kind", "enabled", "archived_at", "updated_at"]
    list_filter = ["kind", "enabled", ("archived_at", admin.EmptyFieldListFilter), "practice"]
    search_fields = ["name", "practice__name"]
    fields = CAMPAIGN_FIELDS
    readonly_fields = CAMPAIGN_FIELDS
    inlines = [MessageStepInline]
    actions = ["turn_on", "turn_off", "archive"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # The admin's delete cascades; removing goes through ``campaign_delete`` (the
        # "archive" action), which keeps history and audits it.
        return False

    def _set_enabled(self, request, queryset, enabled: bool) -> None:
        changed = 0
        for campaign in queryset:
            try:
                campaign_set_enabled(campaign=campaign, enabled=enabled, actor=request.user)
            except ValidationError as error:  # report it and go on with the others
                self.message_user(request, f"{campaign}: {error}", messages.ERROR)
            else:
                changed += 1
        self.message_user(request, f"{changed} campaign(s) turned {'on' if enabled else 'off'}.")

    @admin.action(description="Turn the selected campaigns on")
    def turn_on(self, request, queryset):
        self._set_enabled(request, queryset, True)

    @admin.action(description="Turn the selected campaigns off")
    def turn_off(self, request, queryset):
        self._set_enabled(request, queryset, False)

    @admin.action(description="Remove the selected campaigns (archived when they have history)")
    def archive(self, request, queryset):
        outcomes = {"archived": 0, "deleted": 0}
        for campaign in queryset.filter(archived_at__isnull=True):
            try:
                outcomes[campaign_delete(campaign=campaign, actor=request.user)] += 1
            except ValidationError as error:
                self.message_user(
                    request,
                    f"{campaign} cannot be removed: {' '.join(error.messages)}",
                    messages.ERROR,
                )
        self.message_user(
            request,
            f"{outcomes['archived']} campaign(s) archived, {outcomes['deleted']} deleted.",
        )


class MessageTemplateForm(forms.ModelForm):
    """Templates are validated like campaign steps (merge fields; email HTML sanitized) and
    belong to their folder's practice (none: the master library)."""

    class Meta:
        model = MessageTemplate
        fields = ["folder", "name", "channel", "subject", "body"]

    def clean(self):
        cleaned = super().clean()
        if {"channel", "body"} <= set(cleaned):
            message, errors = message_validate(
                {
                    "channel": cleaned["channel"],
                    "subject": cleaned.get("subject", ""),
                    "body": cleaned["body"],
                },
                with_delay=False,
            )
            for name, texts in errors.items():
                for text in texts:
                    self.add_error(name if name in self.fields else None, text)
            if message:
                cleaned["subject"], cleaned["body"] = message["subject"], message["body"]
        return cleaned

    def save(self, commit=True):
        self.instance.practice_id = self.instance.folder.practice_id
        return super().save(commit)


class MessageTemplateInline(admin.StackedInline):
    model = MessageTemplate
    form = MessageTemplateForm
    extra = 0
    fields = ["name", "channel", "subject", "body"]


@admin.register(TemplateFolder)
class TemplateFolderAdmin(admin.ModelAdmin):
    list_display = ["name", "practice", "is_master"]
    list_filter = [("practice", admin.EmptyFieldListFilter)]
    search_fields = ["name", "practice__name"]
    inlines = [MessageTemplateInline]

    @admin.display(boolean=True, description="Master library")
    def is_master(self, obj: TemplateFolder) -> bool:
        return obj.is_master


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    form = MessageTemplateForm
    list_display = ["name", "folder", "practice", "channel", "updated_at"]
    list_filter = ["channel", ("practice", admin.EmptyFieldListFilter)]
    search_fields = ["name", "folder__name", "body"]
