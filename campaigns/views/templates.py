"""The template library: the practice's folders and templates (editable) beside the
operator's master library (read-only); Managers create folders."""

from __future__ import annotations

from django.contrib import messages as flash
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from campaigns import services
from campaigns.content.sms import sms_counts
from campaigns.forms.messages import MERGE_FIELD_CHOICES
from campaigns.forms.templates import FolderForm, TemplateForm
from campaigns.models import MessageTemplate
from campaigns.selectors import template_folders
from campaigns.views.shared import error_text
from trackstat.models import Role
from trackstat.tenancy import PracticeRequest, has_role, role_required


def _template_list_page(
    request: PracticeRequest, folder_form: FolderForm | None = None, status: int = 200
) -> HttpResponse:
    folders = list(template_folders(practice=request.practice))
    context = {
        "practice_folders": [f for f in folders if not f.is_master],
        "master_folders": [f for f in folders if f.is_master],
        "can_create_folders": has_role(request, Role.MANAGER),
        "folder_form": folder_form or FolderForm(),
    }
    return render(request, "campaigns/template_list.html", context, status=status)


@require_safe
@role_required(Role.USER_PLUS)
def template_list(request: PracticeRequest) -> HttpResponse:
    return _template_list_page(request)


def _template_form(request: PracticeRequest, template: MessageTemplate | None) -> HttpResponse:
    practice = request.practice
    status = 200
    if request.method == "POST":
        form = TemplateForm(request.POST, practice=practice)
        if form.is_valid():
            data = form.cleaned_data
            try:
                saved = services.template_save(
                    practice=practice, folder=data["folder"], data=data, template=template
                )
            except ValidationError as error:
                form.add_error(None, error_text(error))
            else:
                flash.success(request, f"Saved the template “{saved.name}”.")
                return redirect("campaigns:template_list")
        status = 400
    elif template:
        form = TemplateForm(initial=TemplateForm.initial_from(template), practice=practice)
    else:
        form = TemplateForm(initial={"folder": request.GET.get("folder")}, practice=practice)
    context = {
        "form": form,
        "template": template,
        "has_folders": form.fields["folder"].queryset.exists(),
        "merge_fields": MERGE_FIELD_CHOICES,
        "sms_count_url": reverse("campaigns:sms_count"),
        **sms_counts(form["body"].value() or ""),
    }
    return render(request, "campaigns/template_form.html", context, status=status)


@role_required(Role.USER_PLUS)
def template_new(request: PracticeRequest) -> HttpResponse:
    return _template_form(request, None)


@role_required(Role.USER_PLUS)
def template_edit(request: PracticeRequest, template_id: int) -> HttpResponse:
    """Only the practice's own templates: the master library is read-only (404 here)."""
    template = get_object_or_404(MessageTemplate, pk=template_id, practice=request.practice)
    return _template_form(request, template)


@require_POST
@role_required(Role.MANAGER)
def template_folder_new(request: PracticeRequest) -> HttpResponse:
    form = FolderForm(request.POST)
    if form.is_valid():
        try:
            folder = services.template_folder_create(
                practice=request.practice, name=form.cleaned_data["name"]
            )
        except ValidationError as error:
            form.add_error("name", error_text(error))
        else:
            flash.success(request, f"Created the folder “{folder.name}”.")
            return redirect("campaigns:template_list")
    return _template_list_page(request, folder_form=form, status=400)
