"""The EMR record format (DESIGN §4.1): validation of one patient, case or appointment.

The REST API, CSV import and FHIR import all turn their input into these JSON-shaped records
and validate them here, so every path accepts and rejects the same things. Every field but
``external_id`` is optional: a field that is present is set (``null`` or ``""`` clears it where
that makes sense), a field that is absent is left as it is.

Validation is plain functions over a field spec rather than DRF serializers: a bulk request
carries 5,000 records, and DRF's per-field machinery cost more than the rest of the import.
The ``*RecordSerializer`` classes below describe the same fields for the OpenAPI schema, and a
test keeps the two in step.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from rest_framework import serializers

from patients.models import (
    AppointmentStatus,
    Case,
    Lookup,
    Patient,
    PatientStatus,
    Sex,
    Tag,
)
from trackstat.phones import phone_to_e164
from trackstat.validators import (
    InvalidValue,
    check_text,
    max_length_of,
    parse_date,
    parse_external_id,
    parse_instant,
    parse_int,
    text_problem,
)

MAX_BULK_RECORDS = 5000
# External ids share one width across patients, cases and appointments.
EXTERNAL_ID_LENGTH = max_length_of(Patient, "external_id")
LOOKUP_NAME_LENGTH = max_length_of(Lookup, "name")
TAG_NAME_LENGTH = max_length_of(Tag, "name")

# EMR spellings of patient statuses (ChiroTouch, ClinicMind, …) → ours; compared in lower case.
PATIENT_STATUS_ALIASES = {
    "active": PatientStatus.ACTIVE,
    "inactive": PatientStatus.INACTIVE,
    "deceased": PatientStatus.DECEASED,
    "discharged": PatientStatus.DISCHARGED,
}
SEX_ALIASES = {
    "m": Sex.MALE,
    "male": Sex.MALE,
    "f": Sex.FEMALE,
    "female": Sex.FEMALE,
    "x": Sex.OTHER,
    "other": Sex.OTHER,
    "u": Sex.UNKNOWN,
    "unknown": Sex.UNKNOWN,
    "": Sex.UNKNOWN,
}
APPOINTMENT_STATUS_ALIASES = {
    **{choice.value: choice for choice in AppointmentStatus},
    "checked in": AppointmentStatus.CHECKED_IN,
    "checked-in": AppointmentStatus.CHECKED_IN,
    "arrived": AppointmentStatus.CHECKED_IN,
    "no show": AppointmentStatus.NO_SHOW,
    "no-show": AppointmentStatus.NO_SHOW,
    "noshow": AppointmentStatus.NO_SHOW,
    "canceled": AppointmentStatus.CANCELLED,
}
TRUE_WORDS = {"true", "yes", "y", "1", "on"}
FALSE_WORDS = {"false", "no", "n", "0", "off", ""}


class FieldError(InvalidValue):
    """One field's value is not acceptable; the message never repeats the value."""


# --- field parsers: value in, clean value out (or FieldError) -------------------------------
# The rules themselves (what storage can hold, sane dates) live in ``trackstat.validators``;
# an ``InvalidValue`` from there is a field error like any other.


def text(max_length: int, *, null_as_blank: bool = True) -> Callable[[Any], str]:
    def parse(value):
        if value is None and null_as_blank:
            return ""
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise FieldError("Not a valid string.")
        return check_text(str(value).strip(), max_length=max_length)

    return parse


def external_id(value) -> str:
    return parse_external_id(value, max_length=EXTERNAL_ID_LENGTH)


def date_value(*, birth: bool = False) -> Callable[[Any], dt.date | None]:
    """A ``YYYY-MM-DD`` date in the sane range; a birth date is not in the future either."""

    def parse(value):
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise FieldError("Date has wrong format. Use YYYY-MM-DD.")
        if birth:
            return parse_date(value, latest=dt.date.today())  # noqa: DTZ011
        return parse_date(value)

    return parse


def aware_datetime(*, null_ok: bool) -> Callable[[Any], dt.datetime | None]:
    def parse(value):
        if value is None and null_ok:
            return None
        if not isinstance(value, str):
            raise FieldError("Datetime has wrong format. Use ISO 8601 with an offset.")
        return parse_instant(value)

    return parse


def choice(aliases: dict[str, str]) -> Callable[[Any], str]:
    allowed = ", ".join(sorted({str(v) for v in aliases.values()}))

    def parse(value):
        key = value.strip().lower() if isinstance(value, str) else None
        if key not in aliases:
            raise FieldError(f"Not a valid choice; use one of: {allowed}.")
        return str(aliases[key])

    return parse


def sex(value) -> str:
    return Sex.UNKNOWN if value is None else choice(SEX_ALIASES)(value)


def phone(value) -> str:
    value = text(40)(value)
    if not value:
        return ""
    try:
        return phone_to_e164(value)
    except ValueError as error:
        raise FieldError(str(error)) from None


def email(value) -> str:
    value = column(Patient, "email")(value)
    if value:
        try:
            validate_email(value)
        except DjangoValidationError:
            raise FieldError("Enter a valid email address.") from None
    return value


def money(value) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise FieldError("A valid number is required.")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise FieldError("A valid number is required.") from None
    if not amount.is_finite():
        raise FieldError("A valid number is required.")
    if amount < 0:
        raise FieldError("Ensure this value is greater than or equal to 0.")
    if amount.as_tuple().exponent < -2:
        raise FieldError("Ensure that there are no more than 2 decimal places.")
    if amount >= Decimal("1e10"):
        raise FieldError("Ensure that there are no more than 12 digits in total.")
    return amount.quantize(Decimal("0.01"))


def boolean(value) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower() if isinstance(value, str | int) else None
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise FieldError("Must be a valid boolean.")


def integer(minimum: int, maximum: int) -> Callable[[Any], int]:
    def parse(value):
        return parse_int(value, minimum=minimum, maximum=maximum)

    return parse


def names(max_length: int) -> Callable[[Any], list[str]]:
    """A list of names (tags, CPT or ICD-10 codes); blanks dropped, order kept."""
    item = text(max_length)

    def parse(value):
        if not isinstance(value, list):
            raise FieldError(f'Expected a list of items but got type "{type(value).__name__}".')
        if len(value) > 200:
            raise FieldError("Ensure this field has no more than 200 elements.")
        return list(dict.fromkeys(name for name in map(item, value) if name))

    return parse


def nested(spec: dict[str, Field]) -> Callable[[Any], dict]:
    def parse(value):
        if not isinstance(value, dict):
            raise FieldError("Expected an object.")
        return _validate(spec, value)

    return parse


@dataclass(frozen=True)
class Field:
    parse: Callable[[Any], Any]
    required: bool = False


class RecordErrors(Exception):
    def __init__(self, errors: dict):
        super().__init__("invalid record")
        self.errors = errors


def _validate(spec: dict[str, Field], item: dict) -> dict:
    record, errors = {}, {}
    for name, field in spec.items():
        if name not in item:
            if field.required:
                errors[name] = ["This field is required."]
            continue
        try:
            record[name] = field.parse(item[name])
        except InvalidValue as error:
            errors[name] = [str(error)]
        except RecordErrors as error:
            errors[name] = error.errors
    if errors:
        raise RecordErrors(errors)
    return record


def column(model: type, name: str) -> Callable[[Any], str]:
    """Text as long as the model's column allows."""
    return text(max_length_of(model, name))


def lookup_name() -> Callable[[Any], str]:
    """A lookup value by name (a provider, an insurer, …)."""
    return text(LOOKUP_NAME_LENGTH)


def nullable_boolean(value) -> bool | None:
    """True, False, or null (unknown)."""
    return None if value is None else boolean(value)


# Marketing consent per channel (DESIGN §5.8): true, false, or null (unknown).
CONSENT_SPEC = {
    "sms_marketing": Field(nullable_boolean),
    "email_marketing": Field(nullable_boolean),
}
ADDRESS_SPEC = {
    "line1": Field(column(Patient, "address_line1")),
    "line2": Field(column(Patient, "address_line2")),
    "city": Field(column(Patient, "city")),
    "state": Field(column(Patient, "state")),
    "postal_code": Field(column(Patient, "postal_code")),
}
PATIENT_SPEC = {
    "external_id": Field(external_id, required=True),
    "first_name": Field(column(Patient, "first_name")),
    "last_name": Field(column(Patient, "last_name")),
    "birth_date": Field(date_value(birth=True)),
    "sex": Field(sex),
    "phone": Field(phone),
    "email": Field(email),
    "address": Field(nested(ADDRESS_SPEC)),
    "status": Field(choice(PATIENT_STATUS_ALIASES)),
    "first_visit_date": Field(date_value()),
    "primary_provider": Field(lookup_name()),
    "referral_source": Field(lookup_name()),
    "attorney": Field(lookup_name()),
    "care_package": Field(lookup_name()),
    "fee_schedule": Field(lookup_name()),
    "insurance_company": Field(lookup_name()),
    "paid_total": Field(money),
    "tags": Field(names(TAG_NAME_LENGTH)),
    "sms_opt_out": Field(boolean),
    "email_opt_out": Field(boolean),
    "consent": Field(nested(CONSENT_SPEC)),
}
CASE_SPEC = {
    "external_id": Field(external_id, required=True),
    "patient_external_id": Field(external_id),
    "case_type": Field(lookup_name()),
    "diagnoses": Field(names(LOOKUP_NAME_LENGTH)),
    "attorney": Field(lookup_name()),
    "insurance_company": Field(lookup_name()),
    "status": Field(column(Case, "status")),
}
APPOINTMENT_SPEC = {
    "external_id": Field(external_id, required=True),
    "patient_external_id": Field(external_id),
    "case_external_id": Field(text(EXTERNAL_ID_LENGTH)),
    "start": Field(aware_datetime(null_ok=False)),
    "duration_minutes": Field(integer(0, 24 * 60)),
    "status": Field(choice(APPOINTMENT_STATUS_ALIASES)),
    "checked_in_at": Field(aware_datetime(null_ok=True)),
    "booked_at": Field(aware_datetime(null_ok=True)),
    "purpose": Field(lookup_name()),
    "provider": Field(lookup_name()),
    "services": Field(names(LOOKUP_NAME_LENGTH)),
}


# --- the same fields, described for the OpenAPI schema --------------------------------------


def _documented_choices(aliases: dict[str, str]) -> list[str]:
    return sorted({str(v) for v in aliases.values()})


def _column(model: type, name: str, **kwargs):
    return serializers.CharField(
        max_length=max_length_of(model, name), allow_blank=True, required=False, **kwargs
    )


class AddressSerializer(serializers.Serializer):
    line1 = _column(Patient, "address_line1")
    line2 = _column(Patient, "address_line2")
    city = _column(Patient, "city")
    state = _column(Patient, "state")
    postal_code = _column(Patient, "postal_code")


class ConsentSerializer(serializers.Serializer):
    sms_marketing = serializers.BooleanField(
        allow_null=True, required=False, help_text="Marketing texts: true, false or null."
    )
    email_marketing = serializers.BooleanField(
        allow_null=True, required=False, help_text="Marketing email: true, false or null."
    )


def _name(**kwargs):
    return serializers.CharField(
        max_length=LOOKUP_NAME_LENGTH, allow_blank=True, allow_null=True, required=False, **kwargs
    )


def _names(help_text: str, max_length: int = LOOKUP_NAME_LENGTH):
    return serializers.ListField(
        child=serializers.CharField(max_length=max_length), required=False, help_text=help_text
    )


class PatientRecordSerializer(serializers.Serializer):
    """A patient as the EMR sends it. Absent fields are left unchanged."""

    record_spec = PATIENT_SPEC

    external_id = serializers.CharField(
        max_length=EXTERNAL_ID_LENGTH,
        help_text="The EMR's id, unique per practice; surrounding spaces are trimmed.",
    )
    first_name = _column(Patient, "first_name")
    last_name = _column(Patient, "last_name")
    birth_date = serializers.DateField(
        allow_null=True, required=False, help_text="YYYY-MM-DD, from 1900-01-01 to today."
    )
    sex = serializers.ChoiceField(
        choices=_documented_choices(SEX_ALIASES),
        required=False,
        allow_null=True,
        help_text="M, F, X or U (male, female, other, unknown are accepted too).",
    )
    phone = serializers.CharField(
        allow_blank=True,
        allow_null=True,
        required=False,
        help_text="Any common US form or E.164; stored as E.164.",
    )
    email = serializers.EmailField(allow_blank=True, allow_null=True, required=False)
    address = AddressSerializer(required=False)
    status = serializers.ChoiceField(
        choices=_documented_choices(PATIENT_STATUS_ALIASES),
        required=False,
        help_text="Case-insensitive; ChiroTouch Inactive/Deceased and ClinicMind Discharged "
        "count as inactive for campaign filters.",
    )
    first_visit_date = serializers.DateField(
        allow_null=True, required=False, help_text="YYYY-MM-DD, from 1900-01-01 to 2100-12-31."
    )
    primary_provider = _name()
    referral_source = _name()
    attorney = _name()
    care_package = _name()
    fee_schedule = _name()
    insurance_company = _name()
    paid_total = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=0, required=False
    )
    tags = _names("Tag names; when present, replaces the patient's tags.", TAG_NAME_LENGTH)
    sms_opt_out = serializers.BooleanField(required=False)
    email_opt_out = serializers.BooleanField(required=False)
    consent = ConsentSerializer(required=False)


class CaseRecordSerializer(serializers.Serializer):
    record_spec = CASE_SPEC

    external_id = serializers.CharField(max_length=EXTERNAL_ID_LENGTH)
    patient_external_id = serializers.CharField(
        max_length=EXTERNAL_ID_LENGTH, required=False, help_text="Required for a new case."
    )
    case_type = _name()
    diagnoses = _names("ICD-10 codes; when present, replaces the case's diagnoses.")
    attorney = _name()
    insurance_company = _name()
    status = _column(Case, "status")


class AppointmentRecordSerializer(serializers.Serializer):
    record_spec = APPOINTMENT_SPEC

    external_id = serializers.CharField(max_length=EXTERNAL_ID_LENGTH)
    patient_external_id = serializers.CharField(
        max_length=EXTERNAL_ID_LENGTH, required=False, help_text="Required for a new appointment."
    )
    case_external_id = serializers.CharField(
        max_length=EXTERNAL_ID_LENGTH, required=False, allow_null=True, allow_blank=True
    )
    start = serializers.DateTimeField(
        required=False,
        help_text="ISO 8601 with an offset within ±14:00, years 1900 to 2100; required for a "
        "new appointment.",
    )
    duration_minutes = serializers.IntegerField(min_value=0, max_value=24 * 60, required=False)
    status = serializers.ChoiceField(
        choices=_documented_choices(APPOINTMENT_STATUS_ALIASES), required=False
    )
    checked_in_at = serializers.DateTimeField(allow_null=True, required=False)
    booked_at = serializers.DateTimeField(
        allow_null=True,
        required=False,
        help_text="When the EMR booked it; the time it was first received if never given.",
    )
    purpose = _name()
    provider = _name()
    services = _names("CPT codes; when present, replaces the appointment's services.")


def echoed_external_id(value) -> str | None:
    """The external id of a refused record as the answer may repeat it: only a string that
    could be stored (a lone surrogate cannot even be written out as UTF-8)."""
    if not isinstance(value, str) or text_problem(value):
        return None
    return value.strip()


def validate_records(record_serializer, items: list) -> tuple[list[dict], list[dict]]:
    """Validate each item against ``record_serializer.record_spec``.

    Returns (valid records, each with its ``_index``; errors as
    ``{"index", "external_id", "errors": {field: [messages]}}``).
    """
    spec = record_serializer.record_spec
    valid, errors = [], []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append(
                {
                    "index": index,
                    "external_id": None,
                    "errors": {"non_field_errors": ["Not an object."]},
                }
            )
            continue
        try:
            record = _validate(spec, item)
        except RecordErrors as error:
            errors.append(
                {
                    "index": index,
                    "external_id": echoed_external_id(item.get("external_id")),
                    "errors": error.errors,
                }
            )
            continue
        record["_index"] = index
        valid.append(record)
    return valid, errors
