"""Patients pages: search and list, detail (tags and opt-outs in place), bulk tagging, CSV import.

Views parse input, call one selector or service and render. The parts htmx swaps are
``{% partialdef %}`` blocks of the page template, rendered alone when ``wants_partial``; every
form also works as a plain POST (redirect back) without JavaScript. The panels that other apps
add to the detail page (``patients.panels``) are their views, loaded by htmx.
"""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from patients import selectors, services
from patients.consent import patient_consent_history, patient_marketing_consent_set
from patients.forms import (
    BulkTagForm,
    MarketingConsentForm,
    OptOutForm,
    PatientImportForm,
    PatientSearchForm,
    TagAddForm,
)
from patients.models import Confirmation, ConsentSource, OptOutSource, Patient, Tag
from patients.panels import patient_panels
from patients.sync.csv import COLUMNS as CSV_COLUMNS
from patients.sync.csv import CsvFormatError, patients_csv_import
from trackstat.htmx import wants_partial
from trackstat.models import Role
from trackstat.post_result import post_result_get, post_result_keep
from trackstat.tenancy import PracticeRequest, has_role, role_required

PATIENTS_PER_PAGE = 50
APPOINTMENTS_SHOWN = 100
UNKNOWN_IDS_SHOWN = 1000
IMPORT_ERRORS_SHOWN = 1000


def _practice_tag_names(request: PracticeRequest) -> list[str]:
    return list(request.practice.tags.order_by("name").values_list("name", flat=True))


@role_required(Role.USER)
@vary_on_headers("HX-Request")
def patient_list(request: PracticeRequest) -> HttpResponse:
    """Search by name, phone, email or external id; filter by tag and status; 50 a page."""
    form = PatientSearchForm(request.GET, tag_names=_practice_tag_names(request))
    status = 200
    if form.is_valid():
        patients = selectors.patient_list(
            practice=request.practice,
            query=form.cleaned_data["q"],
            status=form.cleaned_data["status"],
            tag=form.cleaned_data["tag"],
        )
        # The list shows no lookups (provider, insurer, …): no joins for them. The page's tags
        # as plain lists (``tag_list``): ``patient.tags.all`` cloned a queryset per row.
        patients = (
            patients.select_related(None)
            .prefetch_related(None)
            .prefetch_related(
                Prefetch("tags", queryset=Tag.objects.order_by("name"), to_attr="tag_list")
            )
        )
    else:
        patients = Patient.objects.none()
        status = 400
    page = Paginator(patients, PATIENTS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "form": form,
        "page": page,
        "is_manager": has_role(request, Role.MANAGER),
    }
    template = "patients/list.html#results" if wants_partial(request) else "patients/list.html"
    return render(request, template, context, status=status)


def _patient_or_404(request: PracticeRequest, pk: int) -> Patient:
    return get_object_or_404(selectors.patient_queryset(practice=request.practice), pk=pk)


def _opt_out_rows(patient: Patient) -> list[dict]:
    return [
        {
            "channel": "sms",
            "label": "Disable Text",
            "noun": "text message",
            "on": patient.sms_opt_out,
            "at": patient.sms_opt_out_at,
            "source": patient.get_sms_opt_out_source_display(),
            "address": patient.phone,
        },
        {
            "channel": "email",
            "label": "Disable Email",
            "noun": "email",
            "on": patient.email_opt_out,
            "at": patient.email_opt_out_at,
            "source": patient.get_email_opt_out_source_display(),
            "address": patient.email,
        },
    ]


def _tags_context(request: PracticeRequest, patient: Patient, tag_form=None) -> dict:
    return {
        "patient": patient,
        "tag_form": tag_form or TagAddForm(),
        "practice_tag_names": _practice_tag_names(request),
    }


def _consent_rows(patient: Patient) -> list[dict]:
    """Marketing consent per channel, as the patient page shows it (DESIGN §5.8)."""
    words = {True: "given", False: "refused", None: "unknown"}
    return [
        {
            "channel": channel,
            "noun": noun,
            "state": words[getattr(patient, f"{channel}_marketing_consent")],
            "value": {True: "true", False: "false", None: ""}[
                getattr(patient, f"{channel}_marketing_consent")
            ],
        }
        for channel, noun in (("sms", "Marketing texts"), ("email", "Marketing email"))
    ]


def _opt_outs_context(request: PracticeRequest, patient: Patient, opt_out_form=None) -> dict:
    return {
        "patient": patient,
        "opt_outs": _opt_out_rows(patient),
        "opt_out_form": opt_out_form,
        "consents": _consent_rows(patient),
        "consent_history": patient_consent_history(practice=request.practice, patient=patient),
    }


def _detail_context(
    request: PracticeRequest, patient: Patient, *, tag_form=None, opt_out_form=None
) -> dict:
    practice = request.practice
    appointments = selectors.appointment_queryset(practice=practice).filter(patient=patient)
    return {
        **_tags_context(request, patient, tag_form),
        **_opt_outs_context(request, patient, opt_out_form),
        "cases": selectors.case_queryset(practice=practice).filter(patient=patient),
        "appointments": appointments.order_by("-start", "-id")[:APPOINTMENTS_SHOWN],
        "appointment_count": appointments.count(),
        "appointments_shown": APPOINTMENTS_SHOWN,
        "can_see_financials": has_role(request, Role.MANAGER),
        # The apps built on patients add theirs: "why or why not?", the message history.
        "panels": patient_panels(membership=request.membership, patient_id=patient.pk),
    }


@role_required(Role.USER)
def patient_detail(request: PracticeRequest, pk: int) -> HttpResponse:
    patient = _patient_or_404(request, pk)
    return render(request, "patients/detail.html", _detail_context(request, patient))


def _detail_url(patient: Patient, section: str) -> str:
    return f"{reverse('patients:detail', args=[patient.pk])}#{section}"


def _tags_response(request: PracticeRequest, pk: int, form: TagAddForm | None) -> HttpResponse:
    """After a tag change: the tags partial for htmx, else the page (400 on bad input)."""
    patient = _patient_or_404(request, pk)  # fetched again: its tags have changed
    failed = form is not None and form.errors
    if wants_partial(request):
        return render(
            request,
            "patients/detail.html#tags",
            _tags_context(request, patient, form if failed else None),
            status=400 if failed else 200,
        )
    if failed:
        return render(
            request,
            "patients/detail.html",
            _detail_context(request, patient, tag_form=form),
            status=400,
        )
    return redirect(_detail_url(patient, "tags"))


@require_POST
@role_required(Role.USER)
def patient_tag_add(request: PracticeRequest, pk: int) -> HttpResponse:
    patient = _patient_or_404(request, pk)
    form = TagAddForm(request.POST)
    if form.is_valid():
        try:
            tag = services.patient_tag_add(
                practice=request.practice,
                patient=patient,
                name=form.cleaned_data["name"],
                actor=request.user,
                may_create=has_role(request, Role.MANAGER),
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            if not wants_partial(request):
                messages.success(request, f"Tagged {patient} “{tag.name}”.")
    return _tags_response(request, pk, form)


@require_POST
@role_required(Role.USER)
def patient_tag_remove(request: PracticeRequest, pk: int, tag_id: int) -> HttpResponse:
    patient = _patient_or_404(request, pk)
    tag = get_object_or_404(Tag, pk=tag_id, practice=request.practice)
    services.patient_tag_remove(
        practice=request.practice, patient=patient, tag_id=tag.pk, actor=request.user
    )
    if not wants_partial(request):
        messages.success(request, f"Removed the tag “{tag.name}” from {patient}.")
    return _tags_response(request, pk, None)


def _opt_outs_saved(request: PracticeRequest, patient: Patient, note: str) -> HttpResponse:
    """The opt-outs panel after a change: the panel itself (htmx), else the page with a note."""
    if wants_partial(request):
        return render(request, "patients/detail.html#opt-outs", _opt_outs_context(request, patient))
    messages.success(request, note)
    return redirect(_detail_url(patient, "opt-outs"))


def _opt_outs_refused(request: PracticeRequest, patient: Patient, form) -> HttpResponse:
    """The opt-outs panel (htmx) or the whole page with the form's errors, as a 400."""
    if wants_partial(request):
        return render(
            request,
            "patients/detail.html#opt-outs",
            _opt_outs_context(request, patient, form),
            status=400,
        )
    return render(
        request,
        "patients/detail.html",
        _detail_context(request, patient, opt_out_form=form),
        status=400,
    )


@require_POST
@role_required(Role.USER)
def patient_marketing_consent(request: PracticeRequest, pk: int) -> HttpResponse:
    """Staff record a patient's marketing consent for a channel (ledger and audit by the
    service)."""
    patient = _patient_or_404(request, pk)
    form = MarketingConsentForm(request.POST)
    if form.is_valid():
        patient = patient_marketing_consent_set(
            practice=request.practice,
            patient=patient,
            channel=form.cleaned_data["channel"],
            granted=form.cleaned_data["granted"],
            source=ConsentSource.STAFF,
            actor=request.user,
        )
        return _opt_outs_saved(request, patient, f"Marketing consent of {patient} recorded.")
    return _opt_outs_refused(request, patient, form)


@require_POST
@role_required(Role.USER)
def patient_opt_out(request: PracticeRequest, pk: int) -> HttpResponse:
    """The Disable Text / Disable Email switches (audited by the service)."""
    patient = _patient_or_404(request, pk)
    form = OptOutForm(request.POST)
    if form.is_valid():
        channel, opted_out = form.cleaned_data["channel"], form.cleaned_data["opted_out"]
        patient = services.patient_opt_out_set(
            practice=request.practice,
            patient=patient,
            channel=channel,
            opted_out=opted_out,
            source=OptOutSource.STAFF,
            actor=request.user,
        )
        noun = "Text messages" if channel == "sms" else "Emails"
        state = "disabled" if opted_out else "enabled again"
        return _opt_outs_saved(request, patient, f"{noun} to {patient} are {state}.")
    return _opt_outs_refused(request, patient, form)


@role_required(Role.MANAGER)
def patients_bulk_tag(request: PracticeRequest) -> HttpResponse:
    """Tag many patients at once by external id, pasted or from a CSV's column. A done POST
    redirects to the page with its result, so a refresh tags nothing again (issue 16, item 9)."""
    status = 200
    if request.method == "POST":
        form = BulkTagForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                done = services.patients_tag_bulk(
                    practice=request.practice,
                    name=form.cleaned_data["name"],
                    external_ids=form.cleaned_data["ids"],
                    actor=request.user,
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                result = {
                    "tag": done.tag.name,
                    "tagged": done.tagged,
                    "already": done.already,
                    "unknown_count": len(done.unknown),
                    "unknown": done.unknown[:UNKNOWN_IDS_SHOWN],
                }
                query = post_result_keep(request, page="bulk_tag", result=result)
                return redirect(reverse("patients:bulk_tag") + query)
        status = 400
    else:
        form = BulkTagForm()
    result = post_result_get(request, page="bulk_tag") if request.method == "GET" else None
    context = {
        "form": form,
        "result": result,
        "unknown_hidden": result["unknown_count"] - len(result["unknown"]) if result else 0,
    }
    return render(request, "patients/bulk_tag.html", context, status=status)


def _flatten_errors(errors, field: str = "") -> list[tuple[str, str]]:
    """(field, message) pairs of a serializer's error structure; nested address errors are
    named by their CSV column (``postal_code``), list items by their field."""
    if isinstance(errors, dict):
        pairs = []
        for key, value in errors.items():
            name = str(key) if field in ("", "address") else field
            pairs += _flatten_errors(value, name)
        return pairs
    if isinstance(errors, list | tuple):
        return [pair for item in errors for pair in _flatten_errors(item, field)]
    return [(field if field not in ("", "non_field_errors") else "row", str(errors))]


def _import_error_rows(result: dict) -> list[dict]:
    return [
        {
            "row": error["row"],
            "external_id": error.get("external_id") or "",
            "field": field,
            "message": message,
        }
        for error in result["errors"]
        for field, message in _flatten_errors(error["errors"])
    ]


@role_required(Role.MANAGER)
def patients_import(request: PracticeRequest) -> HttpResponse:
    """Upload a patients CSV (header row of the patient field names); report errors by row.
    A done import redirects to the page with its result, so a refresh imports nothing again
    (issue 16, item 9); the result lists the first ``IMPORT_ERRORS_SHOWN`` error lines."""
    status = 200
    if request.method == "POST":
        form = PatientImportForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                done = patients_csv_import(
                    practice=request.practice,
                    content=form.cleaned_data["file"],
                    actor=request.user,
                )
            except CsvFormatError as error:
                form.add_error("file", error.message)
            else:
                error_rows = _import_error_rows(done)
                result = {
                    **{key: done[key] for key in ("rows", "created", "updated", "unchanged")},
                    "not_saved": len(done["errors"]),
                    "error_lines": len(error_rows),
                    "error_rows": error_rows[:IMPORT_ERRORS_SHOWN],
                }
                query = post_result_keep(request, page="import", result=result)
                return redirect(reverse("patients:import") + query)
        status = 400
    else:
        form = PatientImportForm()
    result = post_result_get(request, page="import") if request.method == "GET" else None
    context = {
        "form": form,
        "result": result,
        "rows_saved": result["rows"] - result["not_saved"] if result else 0,
        "error_lines_hidden": result["error_lines"] - len(result["error_rows"]) if result else 0,
        "columns": sorted(CSV_COLUMNS),
    }
    return render(request, "patients/import.html", context, status=status)


CONFIRMATION_WORKLIST_CHOICES = [
    (Confirmation.RESCHEDULE_REQUESTED, "Asked to reschedule"),
    (Confirmation.CANCEL_REQUESTED, "Asked to cancel"),
    (Confirmation.REQUESTED, "Asked, no answer yet"),
    (Confirmation.CONFIRMED, "Confirmed"),
    (Confirmation.NONE, "Not asked"),
]
# The Today page's links narrow the worklist to one local day.
WORKLIST_DAYS = {"today": 0, "tomorrow": 1}


@role_required(Role.USER)
def appointment_requests(request: PracticeRequest) -> HttpResponse:
    """The worklist of patients' answers to reminders (DESIGN §7): by default the upcoming
    appointments whose patient asked to reschedule, soonest first, to call them back."""
    confirmation = request.GET.get("confirmation") or Confirmation.RESCHEDULE_REQUESTED
    if confirmation not in dict(CONFIRMATION_WORKLIST_CHOICES):
        confirmation = Confirmation.RESCHEDULE_REQUESTED
    since = timezone.now() - dt.timedelta(hours=12)
    day_name = request.GET.get("day", "")
    day = None
    if day_name in WORKLIST_DAYS:
        today = timezone.localtime(timezone.now(), request.practice.tz).date()
        day = today + dt.timedelta(days=WORKLIST_DAYS[day_name])
    else:
        day_name = ""
    appointments = selectors.appointments_by_confirmation(
        practice=request.practice, confirmation=confirmation, since=since, day=day
    )
    page = Paginator(appointments, PATIENTS_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "patients/appointment_requests.html",
        {
            "page": page,
            "confirmation": confirmation,
            "choices": CONFIRMATION_WORKLIST_CHOICES,
            "day": day_name,
            "day_date": day,
        },
    )
