"""Django admin for the operator: practices, memberships, API keys, the audit log."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from trackstat.forms import e164_or_blank
from trackstat.models import ApiKey, AuditEvent, Membership, Practice, User


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class PracticeAdminForm(forms.ModelForm):
    """Phone numbers in any common form, stored in E.164 (so a taken sender number is
    recognized however it was typed). The admin builds its model and fields."""

    def clean_phone(self) -> str:
        return e164_or_blank(self.cleaned_data.get("phone", ""))

    def clean_sms_from(self) -> str:
        return e164_or_blank(self.cleaned_data.get("sms_from", ""))


@admin.register(Practice)
class PracticeAdmin(admin.ModelAdmin):
    form = PracticeAdminForm
    list_display = ["name", "slug", "time_zone", "sms_from", "email_from", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "practice", "role", "created_at"]
    list_filter = ["role", "practice"]
    search_fields = ["user__email", "practice__name"]
    autocomplete_fields = ["user", "practice"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "practice", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["practice"]
    readonly_fields = ["prefix", "digest", "created_by", "created_at", "last_used_at"]
    fields = [
        "practice",
        "name",
        "prefix",
        "digest",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]

    def has_add_permission(self, request) -> bool:
        # Keys are issued by create_practice or the Settings page, which show the secret once.
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["at", "practice", "actor_label", "action", "target_type", "target_id"]
    list_filter = ["action", "practice"]
    search_fields = ["actor_label", "action", "target_id"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "first_name", "last_name", "is_staff", "is_active"]
    search_fields = ["email", "first_name", "last_name"]
    fieldsets = (
        (None, {"fields": ["email", "password"]}),
        ("Personal info", {"fields": ["first_name", "last_name"]}),
        ("Permissions", {"fields": ["is_active", "is_staff", "is_superuser"]}),
        ("Important dates", {"fields": ["last_login", "date_joined"]}),
    )
    add_fieldsets = ((None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]}),)
