"""``POST /api/v1/fhir`` (DESIGN §4.1): a thin view over ``patients.sync.fhir``."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.response import Response

from patients.apis import SyncApiView
from patients.sync.fhir.importer import fhir_bundle_import
from patients.sync.fhir.reading import FhirBundleError
from trackstat.api_auth import actor_of
from trackstat.api_parsers import JSONParser


class FhirJsonParser(JSONParser):
    """FHIR's own media type; the body is the same JSON."""

    media_type = "application/fhir+json"


class FhirImportCountsSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()


class FhirEncounterCountsSerializer(serializers.Serializer):
    applied = serializers.IntegerField(help_text="Finished or in-progress encounters: visits.")
    skipped = serializers.IntegerField(help_text="Encounters of other statuses, ignored.")


class FhirConsentCountsSerializer(serializers.Serializer):
    recorded = serializers.IntegerField(help_text="Consents now in force (in the ledger).")
    superseded = serializers.IntegerField(
        help_text="Consents older than the patient's latest change: ledger history only."
    )
    unchanged = serializers.IntegerField(help_text="Consents recorded before (sent again).")
    skipped = serializers.IntegerField(help_text="Draft, proposed or entered-in-error.")


class FhirEntryErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The entry's position in Bundle.entry.")
    resource_type = serializers.CharField(allow_null=True)
    external_id = serializers.CharField(allow_null=True)
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages by FHIR element (birthDate, telecom, participant, …).",
    )


class FhirImportResultSerializer(serializers.Serializer):
    patients = FhirImportCountsSerializer()
    appointments = FhirImportCountsSerializer()
    encounters = FhirEncounterCountsSerializer()
    consents = FhirConsentCountsSerializer()
    errors = FhirEntryErrorSerializer(many=True, help_text="The entries not imported, and why.")


class FhirErrorsSerializer(serializers.Serializer):
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


EXAMPLE_BUNDLE = {
    "resourceType": "Bundle",
    "type": "batch",
    "entry": [
        {
            "fullUrl": "urn:uuid:6f1c2a52-1b7e-4f39-9a51-0c0e5b3c1a01",
            "resource": {
                "resourceType": "Patient",
                "id": "p1",
                "identifier": [{"type": {"coding": [{"code": "MR"}]}, "value": "MRN-1001"}],
                "name": [{"use": "official", "given": ["Ann"], "family": "Lee"}],
                "gender": "female",
                "birthDate": "1980-02-29",
                "telecom": [{"system": "phone", "use": "mobile", "value": "(312) 555-0142"}],
            },
        },
        {
            "resource": {
                "resourceType": "Appointment",
                "id": "a1",
                "status": "booked",
                "start": "2026-03-09T09:30:00-05:00",
                "minutesDuration": 30,
                "participant": [
                    {"actor": {"reference": "urn:uuid:6f1c2a52-1b7e-4f39-9a51-0c0e5b3c1a01"}},
                    {"actor": {"reference": "Practitioner/dr1", "display": "Dr. Smith"}},
                ],
            },
        },
        {
            "resource": {
                "resourceType": "Encounter",
                "id": "e1",
                "status": "finished",
                "appointment": [{"reference": "Appointment/a1"}],
                "period": {"start": "2026-03-09T09:32:00-05:00"},
            },
        },
        {
            "resource": {
                "resourceType": "Consent",
                "id": "c1",
                "meta": {"versionId": "1"},
                "status": "active",
                "scope": {"coding": [{"code": "patient-privacy"}]},
                "category": [
                    {"coding": [{"system": "urn:trackstat:consent-channel", "code": "sms"}]}
                ],
                "patient": {"reference": "urn:uuid:6f1c2a52-1b7e-4f39-9a51-0c0e5b3c1a01"},
                "dateTime": "2026-03-09T09:35:00-05:00",
                "text": {"status": "generated", "div": "<div>Yes to texts about offers</div>"},
                "provision": {
                    "type": "permit",
                    "purpose": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                            "code": "HMARKT",
                        }
                    ],
                },
            },
        },
    ],
}


class FhirBundleApi(SyncApiView):
    """Import a FHIR R4 Bundle of Patient, Appointment, Encounter and Consent resources."""

    parser_classes = [JSONParser, FhirJsonParser]

    @extend_schema(
        summary="Import a FHIR R4 Bundle",
        description=(
            "A `batch`, `transaction` or `collection` Bundle of Patient, Appointment, "
            "Encounter and Consent resources, imported entry by entry: the valid entries are "
            "stored and each entry at fault is listed in `errors` with its index and the FHIR "
            "elements at fault. Identifier (MR preferred) or id gives the external_id; an "
            "Encounter that is `finished` or `in-progress` is a checked-in visit; a Consent "
            "is a change of the patient's consent ledger (channel: a `category` coding of "
            "system `urn:trackstat:consent-channel`, `sms` or `email`; marketing: "
            "`provision.purpose` HMARKT; `permit` opts in, `deny` opts out, at `dateTime`). "
            "A body that is not a "
            "Bundle answers 400 and stores nothing; sending the same bundle twice changes "
            "nothing."
        ),
        request={
            "application/json": OpenApiTypes.OBJECT,
            "application/fhir+json": OpenApiTypes.OBJECT,
        },
        responses={200: FhirImportResultSerializer, 400: FhirErrorsSerializer},
        examples=[OpenApiExample("Bundle", value=EXAMPLE_BUNDLE, request_only=True)],
    )
    def post(self, request):
        try:
            bundle = request.data
        except ParseError:
            raise ValidationError({"non_field_errors": ["Send a FHIR Bundle as JSON."]}) from None
        try:
            outcome = fhir_bundle_import(
                practice=request.practice, bundle=bundle, actor=actor_of(request)
            )
        except FhirBundleError as error:
            raise ValidationError(error.errors) from None
        return Response(outcome)
