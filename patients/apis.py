"""REST API v1 for the EMR sync (DESIGN §4.1): thin views over the sync services."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.parsers import BaseParser, FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from patients import selectors
from patients.models import Confirmation, ConsentSource
from patients.serializers import (
    AppointmentOutputSerializer,
    CaseOutputSerializer,
    PatientOutputSerializer,
)
from patients.sync.appointments import appointments_upsert
from patients.sync.cases import cases_upsert
from patients.sync.csv import CsvFormatError, patients_csv_import
from patients.sync.patients import patients_upsert
from patients.sync.records import (
    MAX_BULK_RECORDS,
    AppointmentRecordSerializer,
    CaseRecordSerializer,
    PatientRecordSerializer,
    validate_records,
)
from patients.sync.upsert import UpsertResult
from trackstat.api_auth import actor_of
from trackstat.api_errors import query_param
from trackstat.models import ApiKey, Role
from trackstat.validators import parse_external_id, parse_instant

BulkResultSerializer = inline_serializer(
    "BulkResult",
    {
        "created": serializers.IntegerField(),
        "updated": serializers.IntegerField(),
        "unchanged": serializers.IntegerField(),
        "errors": serializers.ListField(child=serializers.DictField()),
    },
)

CsvImportResultSerializer = inline_serializer(
    "CsvImportResult",
    {
        "rows": serializers.IntegerField(),
        "created": serializers.IntegerField(),
        "updated": serializers.IntegerField(),
        "unchanged": serializers.IntegerField(),
        "errors": serializers.ListField(child=serializers.DictField()),
    },
)


def _check_upload_size(size: int) -> None:
    """A CSV (a body or a file) is held to the request body limit: 413 beyond it."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is not None and size > limit:
        raise RequestDataTooBig("The CSV is larger than DATA_UPLOAD_MAX_MEMORY_SIZE.")


class CsvUploadParser(BaseParser):
    """A raw ``text/csv`` body, handed on as bytes."""

    media_type = "text/csv"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        content = stream.read() if limit is None else stream.read(limit + 1)
        _check_upload_size(len(content))
        return content


class SyncApiView(APIView):
    """EMR sync endpoints: any member reads; writing from a browser session needs a Manager
    (an API key may always write)."""

    write_role = Role.MANAGER


def show_financial(request: Request) -> bool:
    """Paid totals are for EMR connectors and Managers and above (DESIGN §3)."""
    if isinstance(request.auth, ApiKey):
        return True
    return request.membership is not None and request.membership.has_role(Role.MANAGER)


def detail_schema(output_serializer, record_serializer):
    return extend_schema_view(
        get=extend_schema(responses=output_serializer),
        put=extend_schema(
            request=record_serializer,
            responses={200: output_serializer, 201: output_serializer},
        ),
    )


def bulk_schema(name: str, key: str, record_serializer):
    return extend_schema_view(
        post=extend_schema(
            request=inline_serializer(name, {key: record_serializer(many=True)}),
            responses=BulkResultSerializer,
        )
    )


class RecordDetailApi(SyncApiView):
    """``GET`` and ``PUT`` of one record by its external id (patients, cases, appointments)."""

    selector: Callable
    output_serializer: type[serializers.Serializer]
    record_serializer: type[serializers.Serializer]

    def upsert(self, records: list[dict]) -> UpsertResult:
        raise NotImplementedError

    def serializer_context(self) -> dict:
        return {}

    def read(self, external_id: str) -> dict:
        row = get_object_or_404(
            self.selector(practice=self.request.practice), external_id=external_id.strip()
        )
        return self.output_serializer(row, context=self.serializer_context()).data

    def get(self, request, external_id: str):
        return Response(self.read(external_id))

    def put(self, request, external_id: str):
        """Validate the record, upsert it, answer 201 (created) or 200 with its state.

        External ids are trimmed on write and on read alike: ``PUT /patients/%20P1`` writes
        and answers ``P1``."""
        if not isinstance(request.data, dict):
            raise ValidationError({"non_field_errors": ["Send a JSON object."]})
        sent = request.data.get("external_id")
        if sent is not None and (not isinstance(sent, str) or sent.strip() != external_id.strip()):
            raise ValidationError({"external_id": ["Does not match the external_id in the URL."]})
        records, errors = validate_records(
            self.record_serializer, [{**request.data, "external_id": external_id}]
        )
        if errors:
            raise ValidationError(errors[0]["errors"])
        result = self.upsert(records)
        if result.errors:
            raise ValidationError(result.errors[0]["errors"])
        created = result.outcomes[0] == "created"
        return Response(
            self.read(external_id),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class RecordBulkApi(SyncApiView):
    """``POST …:bulk``: up to 5,000 records, per-record results, valid ones saved."""

    key: str
    record_serializer: type[serializers.Serializer]

    def upsert(self, records: list[dict]) -> UpsertResult:
        raise NotImplementedError

    def post(self, request):
        key = self.key
        items = request.data.get(key) if isinstance(request.data, dict) else None
        if not isinstance(items, list):
            raise ValidationError({key: [f'Send {{"{key}": [...]}}, a list of records.']})
        if len(items) > MAX_BULK_RECORDS:
            raise ValidationError({key: [f"At most {MAX_BULK_RECORDS} records per request."]})
        records, errors = validate_records(self.record_serializer, items)
        result = self.upsert(records)
        result.errors += errors
        return Response(result.as_response())


class PatientListApi(ListAPIView):
    serializer_class = PatientOutputSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, description="Name, phone, email or external id"),
            OpenApiParameter("status", str, enum=["active", "inactive", "deceased", "discharged"]),
            OpenApiParameter("tag", str),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        params = self.request.query_params
        return selectors.patient_list(
            practice=self.request.practice,
            query=params.get("q", ""),
            status=params.get("status", ""),
            tag=params.get("tag", ""),
        )

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "show_financial": show_financial(self.request)}


@detail_schema(PatientOutputSerializer, PatientRecordSerializer)
class PatientDetailApi(RecordDetailApi):
    selector = staticmethod(selectors.patient_queryset)
    output_serializer = PatientOutputSerializer
    record_serializer = PatientRecordSerializer

    def serializer_context(self) -> dict:
        return {"show_financial": show_financial(self.request)}

    def upsert(self, records):
        return patients_upsert(
            practice=self.request.practice,
            records=records,
            actor=actor_of(self.request),
            consent_source=ConsentSource.API,
        )


@bulk_schema("PatientBulk", "patients", PatientRecordSerializer)
class PatientBulkApi(RecordBulkApi):
    key = "patients"
    record_serializer = PatientRecordSerializer

    def upsert(self, records):
        return patients_upsert(
            practice=self.request.practice,
            records=records,
            actor=actor_of(self.request),
            consent_source=ConsentSource.API,
        )


class CaseListApi(ListAPIView):
    serializer_class = CaseOutputSerializer

    @extend_schema(parameters=[OpenApiParameter("patient", str, description="external id")])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        cases = selectors.case_queryset(practice=self.request.practice)
        patient = query_param(self.request, "patient", parse_external_id)
        return cases.filter(patient__external_id=patient) if patient else cases


@detail_schema(CaseOutputSerializer, CaseRecordSerializer)
class CaseDetailApi(RecordDetailApi):
    selector = staticmethod(selectors.case_queryset)
    output_serializer = CaseOutputSerializer
    record_serializer = CaseRecordSerializer

    def upsert(self, records):
        return cases_upsert(practice=self.request.practice, records=records)


class AppointmentListApi(ListAPIView):
    serializer_class = AppointmentOutputSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("patient", str, description="external id"),
            OpenApiParameter(
                "confirmation",
                str,
                enum=Confirmation.values,
                description="Only appointments with this confirmation (DESIGN §4.1.1).",
            ),
            OpenApiParameter(
                "changed_since",
                str,
                description="ISO 8601 with offset: only appointments whose confirmation_at "
                "is at or after it.",
            ),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        appointments = selectors.appointment_queryset(practice=self.request.practice)
        patient = query_param(self.request, "patient", parse_external_id)
        if patient:
            appointments = appointments.filter(patient__external_id=patient)
        confirmation = self.request.query_params.get("confirmation", "").strip()
        if confirmation:
            if confirmation not in Confirmation.values:
                raise ValidationError(
                    {"confirmation": ["Use one of: " + ", ".join(Confirmation.values) + "."]}
                )
            appointments = appointments.filter(confirmation=confirmation)
        changed_since = query_param(self.request, "changed_since", parse_instant)
        if changed_since is not None:
            appointments = appointments.filter(confirmation_at__gte=changed_since)
        return appointments.order_by("-start", "-id")


@detail_schema(AppointmentOutputSerializer, AppointmentRecordSerializer)
class AppointmentDetailApi(RecordDetailApi):
    selector = staticmethod(selectors.appointment_queryset)
    output_serializer = AppointmentOutputSerializer
    record_serializer = AppointmentRecordSerializer

    def upsert(self, records):
        return appointments_upsert(practice=self.request.practice, records=records)


@bulk_schema("AppointmentBulk", "appointments", AppointmentRecordSerializer)
class AppointmentBulkApi(RecordBulkApi):
    key = "appointments"
    record_serializer = AppointmentRecordSerializer

    def upsert(self, records):
        return appointments_upsert(practice=self.request.practice, records=records)


class PatientCsvImportApi(SyncApiView):
    """``POST /api/v1/imports/patients.csv``: a CSV file (multipart ``file``) or a text/csv body."""

    parser_classes = [MultiPartParser, FormParser, CsvUploadParser]

    @extend_schema(
        request={
            "text/csv": {"type": "string", "format": "binary"},
            "multipart/form-data": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
            },
        },
        responses=CsvImportResultSerializer,
    )
    def post(self, request):
        if "file" in request.FILES:
            _check_upload_size(request.FILES["file"].size)
            content = request.FILES["file"].read()
        elif isinstance(request.data, bytes):
            content = request.data
        else:
            raise ValidationError({"file": ["Upload a CSV file as 'file' or send text/csv."]})
        try:
            outcome = patients_csv_import(
                practice=request.practice, content=content, actor=actor_of(request)
            )
        except CsvFormatError as error:
            raise ValidationError({error.field: [error.message]}) from None
        return Response(outcome)
