"""Django admin for the operator: practices, memberships, API keys, the audit log.

What the operator changes goes through the same services as the Settings pages (DESIGN §3):
it is audited with the operator as the actor, a new time zone moves the patients' local
dates, and a practice keeps at least one Administrator.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import ActionLocation
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.core.exceptions import ValidationError
from django.db import models
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.views.decorators.csrf import csrf_protect

from trackstat.forms import e164_or_blank
from trackstat.models import ApiKey, AuditEvent, Membership, Practice, Role, User
from trackstat.services import (
    LAST_ADMINISTRATOR_MESSAGE,
    api_key_revoke,
    membership_change_role,
    membership_invite,
    membership_remove,
    practice_operator_create,
    practice_operator_update,
)

SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "TRACE")
csrf_protect_m = method_decorator(csrf_protect)


class ServiceRefused(Exception):
    """A service refused a save the form had accepted (under its locks it saw a concurrent
    change); carries the service's ``ValidationError``."""

    def __init__(self, error: ValidationError) -> None:
        super().__init__("The service refused the change.")
        self.error = error


class ServicesAdmin(admin.ModelAdmin):
    """A model admin whose saves are the services' (``save_through_service``).

    The services are transactions of their own (durable), and Django's admin opens an atomic
    block around every POST to a change form, which they refuse to join: these forms post
    without it, and each service call is the whole transaction. When a service refuses what
    the form accepted, the form comes back with the service's errors next to their fields and
    what was typed, as for any invalid input (never a 500)."""

    def save_through_service(self, request, obj, form, change) -> models.Model:
        raise NotImplementedError

    def save_model(self, request, obj, form, change) -> None:
        try:
            saved = self.save_through_service(request, obj, form, change)
        except ValidationError as error:
            raise ServiceRefused(error) from None
        # The admin goes on (its history entry, the redirect) with the object it built.
        for field in obj._meta.concrete_fields:
            setattr(obj, field.attname, getattr(saved, field.attname))
        obj._state.adding, obj._state.db = False, saved._state.db

    @csrf_protect_m
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method in SAFE_METHODS:
            return super().changeform_view(request, object_id, form_url, extra_context)
        try:
            return self._changeform_view(request, object_id, form_url, extra_context)
        except ServiceRefused as refused:
            request.service_refusal = refused.error  # read by get_form, to show it
            return self._changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        refusal = getattr(request, "service_refusal", None)
        if refusal is None:
            return form_class

        class RefusedForm(form_class):
            def clean(self):
                cleaned = super().clean()
                for field, errors in refusal.update_error_dict({}).items():
                    self.add_error(field if field in self.fields else None, errors)
                return cleaned

        return RefusedForm


class MembershipInline(admin.TabularInline):
    """The practice's members, read-only. Roles change, and members are added and removed, on
    the Membership pages, one change at a time through the services: one save of the practice
    page could not make its settings and several role changes one transaction of those
    services, nor apply the last-Administrator rule to a batch in any order that makes sense."""

    model = Membership
    extra = 0
    fields = ["user", "role", "created_at", "change_link"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="")
    def change_link(self, membership: Membership) -> str:
        url = reverse("admin:trackstat_membership_change", args=[membership.pk])
        return format_html('<a href="{}">Change role or remove</a>', url)


class PracticeAdminForm(forms.ModelForm):
    """Phone numbers in any common form, stored in E.164 (so a taken sender number is
    recognized however it was typed). The admin builds its model and fields."""

    def clean_phone(self) -> str:
        return e164_or_blank(self.cleaned_data.get("phone", ""))

    def clean_sms_from(self) -> str:
        return e164_or_blank(self.cleaned_data.get("sms_from", ""))


@admin.register(Practice)
class PracticeAdmin(ServicesAdmin):
    form = PracticeAdminForm
    list_display = ["name", "slug", "time_zone", "sms_from", "email_from", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["members"]
    # The messaging policy is the practice's own setting (Settings → Messaging policy and
    # PATCH /api/v1/practice, audited there), not the operator's.
    exclude = ["messaging_policy"]
    inlines = [MembershipInline]

    def get_inline_instances(self, request, obj=None):
        # A new practice has no members: they are added once it exists.
        return super().get_inline_instances(request, obj) if obj else []

    @admin.display(description="Members")
    def members(self, practice: Practice) -> str:
        if practice.pk is None:
            return "Add members once the practice is saved."
        return format_html(
            '<a href="{}?practice={}">Add a member</a> · <a href="{}?practice__id__exact={}">'
            "All members</a>",
            reverse("admin:trackstat_membership_add"),
            practice.pk,
            reverse("admin:trackstat_membership_changelist"),
            practice.pk,
        )

    def save_through_service(self, request, obj, form, change) -> Practice:
        if change:
            # Only what the operator changed: a field they left alone keeps any value an
            # Administrator saved since the page was loaded.
            changes = {name: form.cleaned_data[name] for name in form.changed_data}
            return practice_operator_update(practice=obj, actor=request.user, **changes)
        fields = {name: form.cleaned_data[name] for name in form.fields}
        return practice_operator_create(actor=request.user, **fields)


def _is_last_administrator(membership: Membership) -> bool:
    administrators = Membership.objects.filter(
        practice_id=membership.practice_id, role=Role.ADMINISTRATOR
    ).values_list("pk", flat=True)
    return list(administrators) == [membership.pk]


class MembershipAdminForm(forms.ModelForm):
    """Refuses, next to the role, a demotion that would leave the practice without an
    Administrator (the service checks again, under its lock, when it saves)."""

    def clean(self):
        cleaned = super().clean()
        role = cleaned.get("role")
        if (
            self.instance.pk is not None
            and role is not None
            and role != Role.ADMINISTRATOR
            and _is_last_administrator(self.instance)
        ):
            self.add_error("role", LAST_ADMINISTRATOR_MESSAGE)
        return cleaned


@admin.register(Membership)
class MembershipAdmin(ServicesAdmin):
    form = MembershipAdminForm
    list_display = ["user", "practice", "role", "created_at"]
    list_filter = ["role", "practice"]
    search_fields = ["user__email", "practice__name"]
    autocomplete_fields = ["user", "practice"]
    # No bulk deletion: each removal goes through membership_remove and its rule.
    actions = None

    def get_readonly_fields(self, request, obj=None):
        # One user in one practice: another user or practice is a removal and an addition.
        return ["user", "practice", "created_at"] if obj else []

    def save_through_service(self, request, obj, form, change) -> Membership:
        if not change:
            membership, _ = membership_invite(
                practice=obj.practice,
                email=obj.user.email,
                role=Role(form.cleaned_data["role"]),
                actor=request.user,
            )
            return membership
        if "role" not in form.changed_data:
            return obj
        return membership_change_role(
            practice=obj.practice,
            membership_id=obj.pk,
            role=Role(form.cleaned_data["role"]),
            actor=request.user,
        )

    @csrf_protect_m
    def delete_view(self, request, object_id, extra_context=None):
        membership = self.get_object(request, unquote(object_id))
        if (
            membership is not None
            and self.has_delete_permission(request, membership)
            and _is_last_administrator(membership)
        ):
            return self._removal_refused(request, membership, LAST_ADMINISTRATOR_MESSAGE)
        if request.method in SAFE_METHODS:
            return super().delete_view(request, object_id, extra_context)
        try:
            return self._delete_view(request, object_id, extra_context)
        except ServiceRefused as refused:
            return self._removal_refused(request, membership, " ".join(refused.error.messages))

    def _removal_refused(self, request, membership: Membership, message: str):
        self.message_user(request, message, messages.ERROR)
        return HttpResponseRedirect(
            reverse("admin:trackstat_membership_change", args=[membership.pk])
        )

    def log_deletions(self, request, queryset) -> None:
        """Django writes its history entry before deleting; ``delete_model`` writes it once
        the service has removed the membership, so a refused removal leaves none."""

    def delete_model(self, request, obj) -> None:
        try:
            membership_remove(practice=obj.practice, membership_id=obj.pk, actor=request.user)
        except ValidationError as error:
            raise ServiceRefused(error) from None
        super().log_deletions(request, [obj])


@admin.register(ApiKey)
class ApiKeyAdmin(ServicesAdmin):
    """Keys are read-only here: issued (their secret shown once) by ``create_practice`` or the
    Settings page, and revoked with the audited action below. Nothing else about a key is the
    operator's to change (its practice least of all), nor may a key vanish without a trace."""

    list_display = ["name", "practice", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["practice"]
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
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_revoke_permission(self, request) -> bool:
        return request.user.has_perm("trackstat.change_apikey")

    @admin.action(
        description="Revoke this key",
        description_plural="Revoke selected keys",
        permissions=["revoke"],
        location=[ActionLocation.CHANGE_LIST, ActionLocation.CHANGE_FORM],
    )
    def revoke(self, request, queryset) -> None:
        revoked = 0
        for api_key in queryset.filter(revoked_at__isnull=True).select_related("practice"):
            api_key_revoke(practice=api_key.practice, api_key_id=api_key.pk, actor=request.user)
            revoked += 1
        self.message_user(request, f"Revoked {revoked} API key{'' if revoked == 1 else 's'}.")


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
