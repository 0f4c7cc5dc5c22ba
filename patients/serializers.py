"""Output shapes of patients, cases and appointments in the REST API (DESIGN §4.1)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from patients.consent import consent_state
from patients.models import Appointment, Case, OptOutSource, Patient
from patients.selectors import PATIENT_LOOKUP_FIELDS


class PatientOutputSerializer(serializers.ModelSerializer):
    address = serializers.SerializerMethodField()
    consent = serializers.SerializerMethodField()
    tags = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")
    # Declared: a read-only model field loses ``allow_blank``, and the schema would then
    # promise an address or a source where the answer can be "".
    email = serializers.EmailField(read_only=True, allow_blank=True)
    sms_opt_out_source = serializers.ChoiceField(
        choices=OptOutSource.choices, read_only=True, allow_blank=True
    )
    email_opt_out_source = serializers.ChoiceField(
        choices=OptOutSource.choices, read_only=True, allow_blank=True
    )

    class Meta:
        model = Patient
        fields = [
            "external_id",
            "first_name",
            "last_name",
            "birth_date",
            "sex",
            "phone",
            "email",
            "address",
            "status",
            "first_visit_date",
            *PATIENT_LOOKUP_FIELDS,
            "paid_total",
            "tags",
            "sms_opt_out",
            "sms_opt_out_at",
            "sms_opt_out_source",
            "email_opt_out",
            "email_opt_out_at",
            "email_opt_out_source",
            "consent",
            "visit_count",
            "last_visit_checked_in",
            "last_visit_scheduled",
            "created_at",
            "updated_at",
        ]
        extra_kwargs = {name: {"read_only": True} for name in fields}

    def get_fields(self):
        fields = super().get_fields()
        for name in PATIENT_LOOKUP_FIELDS:
            fields[name] = serializers.SlugRelatedField(
                read_only=True, slug_field="name", allow_null=True
            )
        if not self.context.get("show_financial", True):
            fields.pop("paid_total")
        return fields

    @extend_schema_field(
        {
            "type": "object",
            "properties": {
                "sms_marketing": {"type": "boolean", "nullable": True},
                "email_marketing": {"type": "boolean", "nullable": True},
            },
        }
    )
    def get_consent(self, patient: Patient) -> dict:
        """Marketing consent per channel: true, false, or null (unknown)."""
        return consent_state(patient)

    def get_address(self, patient: Patient) -> dict:
        return {
            "line1": patient.address_line1,
            "line2": patient.address_line2,
            "city": patient.city,
            "state": patient.state,
            "postal_code": patient.postal_code,
        }


class CaseOutputSerializer(serializers.ModelSerializer):
    patient_external_id = serializers.CharField(source="patient.external_id", read_only=True)
    case_type = serializers.SlugRelatedField(read_only=True, slug_field="name", allow_null=True)
    attorney = serializers.SlugRelatedField(read_only=True, slug_field="name", allow_null=True)
    insurance_company = serializers.SlugRelatedField(
        read_only=True, slug_field="name", allow_null=True
    )
    diagnoses = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")

    class Meta:
        model = Case
        fields = [
            "external_id",
            "patient_external_id",
            "case_type",
            "diagnoses",
            "attorney",
            "insurance_company",
            "status",
            "visit_count",
            "first_visit_date",
            "last_visit_checked_in",
            "last_visit_scheduled",
            "created_at",
            "updated_at",
        ]


class AppointmentOutputSerializer(serializers.ModelSerializer):
    patient_external_id = serializers.CharField(source="patient.external_id", read_only=True)
    case_external_id = serializers.CharField(
        source="case.external_id", read_only=True, allow_null=True, default=None
    )
    purpose = serializers.SlugRelatedField(read_only=True, slug_field="name", allow_null=True)
    provider = serializers.SlugRelatedField(read_only=True, slug_field="name", allow_null=True)
    services = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")

    class Meta:
        model = Appointment
        fields = [
            "external_id",
            "patient_external_id",
            "case_external_id",
            "start",
            "duration_minutes",
            "status",
            "checked_in_at",
            "booked_at",
            "purpose",
            "provider",
            "services",
            "confirmation",
            "confirmation_at",
            "created_at",
            "updated_at",
        ]
