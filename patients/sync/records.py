"""The EMR record format (DESIGN §4.1): validation of one patient, case or appointment.

The REST API, CSV import and FHIR import all turn their input into these JSON-shaped records
and validate them here, so every path accepts and rejects the same things. Every field is
optional on update: a field that is present is set (``null`` or ``""`` clears it), a field that
is absent is left as it is.
"""

from __future__ import annotations

import datetime as dt

from rest_framework import serializers

from patients.models import AppointmentStatus, PatientStatus, Sex
from trackstat.phones import phone_to_e164

MAX_BULK_RECORDS = 5000

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


class AliasChoiceField(serializers.Field):
    """A choice given in any of the EMRs' spellings, case-insensitively."""

    def __init__(self, aliases: dict[str, str], **kwargs):
        self.aliases = aliases
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str) or data.strip().lower() not in self.aliases:
            allowed = ", ".join(sorted({str(v) for v in self.aliases.values()}))
            raise serializers.ValidationError(f"Not a valid choice; use one of: {allowed}.")
        return str(self.aliases[data.strip().lower()])

    def to_representation(self, value):
        return value


class PhoneField(serializers.CharField):
    def __init__(self, **kwargs):
        super().__init__(allow_blank=True, allow_null=True, max_length=40, **kwargs)

    def to_internal_value(self, data):
        value = (super().to_internal_value(data) or "").strip()
        if not value:
            return ""
        try:
            return phone_to_e164(value)
        except ValueError as error:
            raise serializers.ValidationError(str(error)) from None


class NameField(serializers.CharField):
    """A lookup value by name (provider, purpose, …); blank or null clears it."""

    def __init__(self, **kwargs):
        super().__init__(allow_blank=True, allow_null=True, max_length=200, **kwargs)

    def to_internal_value(self, data):
        return (super().to_internal_value(data) or "").strip()


def name_list(**kwargs) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.CharField(max_length=200, trim_whitespace=True),
        allow_empty=True,
        max_length=200,
        **kwargs,
    )


class AwareDateTimeField(serializers.DateTimeField):
    """ISO 8601 with an offset: a naive time would be ambiguous across time zones."""

    def to_internal_value(self, value):
        if isinstance(value, str):
            try:
                parsed = dt.datetime.fromisoformat(value.strip())
            except ValueError:
                parsed = None
            if parsed is not None and parsed.tzinfo is None:
                raise serializers.ValidationError(
                    "Give an offset, for example 2026-03-09T09:30:00-05:00."
                )
        return super().to_internal_value(value)


class AddressSerializer(serializers.Serializer):
    line1 = serializers.CharField(max_length=200, allow_blank=True, required=False)
    line2 = serializers.CharField(max_length=200, allow_blank=True, required=False)
    city = serializers.CharField(max_length=100, allow_blank=True, required=False)
    state = serializers.CharField(max_length=50, allow_blank=True, required=False)
    postal_code = serializers.CharField(max_length=20, allow_blank=True, required=False)


class ExternalIdField(serializers.CharField):
    def __init__(self, **kwargs):
        super().__init__(max_length=64, trim_whitespace=True, **kwargs)


class PatientRecordSerializer(serializers.Serializer):
    external_id = ExternalIdField()
    first_name = serializers.CharField(max_length=100, allow_blank=True, required=False)
    last_name = serializers.CharField(max_length=100, allow_blank=True, required=False)
    birth_date = serializers.DateField(allow_null=True, required=False)
    sex = AliasChoiceField(SEX_ALIASES, required=False, allow_null=True)
    phone = PhoneField(required=False)
    email = serializers.EmailField(allow_blank=True, allow_null=True, required=False)
    address = AddressSerializer(required=False)
    status = AliasChoiceField(PATIENT_STATUS_ALIASES, required=False)
    first_visit_date = serializers.DateField(allow_null=True, required=False)
    primary_provider = NameField(required=False)
    referral_source = NameField(required=False)
    attorney = NameField(required=False)
    care_package = NameField(required=False)
    fee_schedule = NameField(required=False)
    insurance_company = NameField(required=False)
    paid_total = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=0, required=False
    )
    tags = name_list(required=False)
    sms_opt_out = serializers.BooleanField(required=False)
    email_opt_out = serializers.BooleanField(required=False)

    def validate_birth_date(self, value):
        if value and not dt.date(1890, 1, 1) <= value <= dt.date.today():  # noqa: DTZ011
            raise serializers.ValidationError("Must be between 1890-01-01 and today.")
        return value


class CaseRecordSerializer(serializers.Serializer):
    external_id = ExternalIdField()
    patient_external_id = ExternalIdField(required=False)
    case_type = NameField(required=False)
    diagnoses = name_list(required=False)
    attorney = NameField(required=False)
    insurance_company = NameField(required=False)
    status = serializers.CharField(max_length=30, allow_blank=True, required=False)


class AppointmentRecordSerializer(serializers.Serializer):
    external_id = ExternalIdField()
    patient_external_id = ExternalIdField(required=False)
    case_external_id = ExternalIdField(required=False, allow_null=True, allow_blank=True)
    start = AwareDateTimeField(required=False)
    duration_minutes = serializers.IntegerField(min_value=0, max_value=24 * 60, required=False)
    status = AliasChoiceField(APPOINTMENT_STATUS_ALIASES, required=False)
    checked_in_at = AwareDateTimeField(allow_null=True, required=False)
    booked_at = AwareDateTimeField(allow_null=True, required=False)
    purpose = NameField(required=False)
    provider = NameField(required=False)
    services = name_list(required=False)


def validate_records(serializer_class, items: list) -> tuple[list[dict], list[dict]]:
    """Validate each item; return (valid records with their index, errors per bad index)."""
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
        serializer = serializer_class(data=item)
        if serializer.is_valid():
            record = dict(serializer.validated_data)
            record["_index"] = index
            valid.append(record)
        else:
            errors.append(
                {
                    "index": index,
                    "external_id": item.get("external_id"),
                    "errors": serializer.errors,
                }
            )
    return valid, errors
