"""REST API v1 routes of the patients app (mounted at /api/v1/)."""

from django.urls import path

from patients import apis
from patients.fhir_api import FhirBundleApi

urlpatterns = [
    path("patients", apis.PatientListApi.as_view(), name="api_patients"),
    path("patients:bulk", apis.PatientBulkApi.as_view(), name="api_patients_bulk"),
    path("patients/<str:external_id>", apis.PatientDetailApi.as_view(), name="api_patient"),
    path("cases", apis.CaseListApi.as_view(), name="api_cases"),
    path("cases/<str:external_id>", apis.CaseDetailApi.as_view(), name="api_case"),
    path("appointments", apis.AppointmentListApi.as_view(), name="api_appointments"),
    path("appointments:bulk", apis.AppointmentBulkApi.as_view(), name="api_appointments_bulk"),
    path("imports/patients.csv", apis.PatientCsvImportApi.as_view(), name="api_patients_csv"),
    path("fhir", FhirBundleApi.as_view(), name="api_fhir"),
    path(
        "appointments/<str:external_id>",
        apis.AppointmentDetailApi.as_view(),
        name="api_appointment",
    ),
]
