"""Forms of the Patients pages: they parse and validate input; services do the writing."""

from __future__ import annotations

import csv
import io
import re

from django import forms

from patients.models import PatientStatus, Tag
from trackstat.fields import BooleanChoiceField
from trackstat.validators import max_length_of

INACTIVE_ANY = "inactive_any"
STATUS_FILTER_CHOICES = [
    ("", "Any status"),
    (PatientStatus.ACTIVE.value, "Active"),
    (INACTIVE_ANY, "Inactive (any: inactive, deceased, discharged)"),
    *[(s.value, f"{s.label} only") for s in PatientStatus if s != PatientStatus.ACTIVE],
]
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_BULK_IDS = 50_000
ID_SEPARATORS = re.compile(r"[\s,;]+")
EXTERNAL_ID_HEADERS = {"external_id", "external id", "externalid"}
TAG_NAME_LENGTH = max_length_of(Tag, "name")


class PatientSearchForm(forms.Form):
    """The list's search box and filters (GET); the tag choices are the practice's tags."""

    q = forms.CharField(
        label="Search",
        required=False,
        max_length=200,
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Name, phone, email or external id"}
        ),
    )
    tag = forms.ChoiceField(label="Tag", required=False)
    status = forms.ChoiceField(label="Status", required=False, choices=STATUS_FILTER_CHOICES)

    def __init__(self, *args, tag_names: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tag"].choices = [("", "Any tag"), *[(name, name) for name in tag_names]]


class TagAddForm(forms.Form):
    name = forms.CharField(
        label="Tag name",
        max_length=TAG_NAME_LENGTH,
        widget=forms.TextInput(
            attrs={"list": "practice-tags", "placeholder": "Add a tag", "autocomplete": "off"}
        ),
    )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Enter a tag name.")
        return name


class OptOutForm(forms.Form):
    """A Disable Text / Disable Email switch: the channel and its new state."""

    channel = forms.ChoiceField(choices=[("sms", "Text (SMS)"), ("email", "Email")])
    opted_out = BooleanChoiceField()


class MarketingConsentForm(forms.Form):
    """A patient's marketing consent for one channel: given, refused or unknown."""

    channel = forms.ChoiceField(choices=[("sms", "Text (SMS)"), ("email", "Email")])
    granted = forms.ChoiceField(
        choices=[("true", "Given"), ("false", "Refused"), ("", "Unknown")], required=False
    )

    def clean_granted(self) -> bool | None:
        return {"true": True, "false": False}.get(self.cleaned_data["granted"])


def _read_text(upload) -> str:
    if upload.size > MAX_UPLOAD_BYTES:
        raise forms.ValidationError(
            f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB."
        )
    try:
        return upload.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise forms.ValidationError("The file is not UTF-8 text (save it as CSV UTF-8).") from None


def external_ids_from_csv(text: str) -> list[str]:
    """The ids of a CSV: the ``external_id`` column if the first row names one, else the
    first column of every row."""
    rows = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    column = next((i for i, name in enumerate(header) if name in EXTERNAL_ID_HEADERS), None)
    if column is None:
        return [row[0].strip() for row in rows if row[0].strip()]
    return [row[column].strip() for row in rows[1:] if len(row) > column and row[column].strip()]


class BulkTagForm(forms.Form):
    """A tag name and the patients' external ids, pasted, uploaded as CSV, or both."""

    name = forms.CharField(label="Tag name", max_length=TAG_NAME_LENGTH)
    external_ids = forms.CharField(
        label="External ids",
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 40}),
        help_text="One per line, or separated by commas or spaces.",
    )
    file = forms.FileField(
        label="Or a CSV file",
        required=False,
        widget=forms.FileInput(attrs={"accept": ".csv,text/csv"}),
        help_text=(
            "The ids are taken from a column named external_id, or else from the first "
            "column of every row."
        ),
    )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Enter a tag name.")
        return name

    def clean_external_ids(self) -> list[str]:
        return [i for i in ID_SEPARATORS.split(self.cleaned_data["external_ids"]) if i]

    def clean_file(self) -> list[str]:
        upload = self.cleaned_data.get("file")
        if not upload:
            return []
        try:
            return external_ids_from_csv(_read_text(upload))
        except csv.Error:
            raise forms.ValidationError(
                "The file is not readable as CSV: save it from the spreadsheet as “CSV UTF-8” "
                "and upload it again."
            ) from None

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        ids = [*cleaned.get("external_ids", []), *cleaned.get("file", [])]
        if not ids:
            self.add_error(
                "external_ids", "Paste at least one external id, or upload a CSV file with ids."
            )
        elif len(ids) > MAX_BULK_IDS:
            self.add_error("external_ids", f"At most {MAX_BULK_IDS} ids at a time.")
        cleaned["ids"] = ids
        return cleaned


class PatientImportForm(forms.Form):
    file = forms.FileField(
        label="Patients CSV",
        widget=forms.FileInput(attrs={"accept": ".csv,text/csv"}),
    )

    def clean_file(self) -> bytes:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB."
            )
        return upload.read()
