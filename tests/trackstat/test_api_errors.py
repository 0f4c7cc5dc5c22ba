"""Every error under ``/api/`` is JSON in the documented shape (issue 13, item 8):
``{"errors": {field: [messages]}}``, with ``non_field_errors`` for the request as a whole."""

from __future__ import annotations

import json
import logging

import pytest
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, RequestFactory

from patients import apis as patient_apis
from patients.models import Patient
from trackstat import api_errors

pytestmark = pytest.mark.django_db

JSON = "application/json"


def assert_shape(response, status: int, field: str = "non_field_errors") -> list[str]:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = json.loads(response.content)
    assert list(body) == ["errors"]
    assert field in body["errors"]
    assert all(isinstance(m, str) for m in body["errors"][field])
    return body["errors"][field]


def test_a_body_that_is_not_json(api):
    [message] = assert_shape(api.post("/api/v1/patients:bulk", "{bad", content_type=JSON), 400)
    assert "JSON parse error" in message


def test_field_errors_keep_their_field(api):
    response = api.put("/api/v1/patients/P1", {"birth_date": "soon"}, content_type=JSON)
    assert_shape(response, 400, "birth_date")


def test_a_body_over_the_limit_is_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = json.dumps({"patients": [{"external_id": f"P{n}"} for n in range(1000)]})
    [message] = assert_shape(api.post("/api/v1/patients:bulk", body, content_type=JSON), 413)
    assert "larger than" in message
    assert not Patient.objects.exists()


def test_a_csv_over_the_limit_is_413_whether_a_body_or_a_file(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    body = "external_id\n" + "\n".join(f"P{n}" for n in range(1000))
    response = api.post("/api/v1/imports/patients.csv", body, content_type="text/csv")
    assert_shape(response, 413)
    upload = SimpleUploadedFile("patients.csv", body.encode(), "text/csv")
    assert_shape(api.post("/api/v1/imports/patients.csv", {"file": upload}), 413)
    assert not Patient.objects.exists()


def full_patient(n: int) -> dict:
    return {
        "external_id": f"EMR-{n:06d}",
        "first_name": "Alexandra-Katherine",
        "last_name": "Montgomery-Fitzgerald",
        "birth_date": "1978-11-23",
        "sex": "F",
        "phone": "(312) 555-0142",
        "email": f"alexandra.montgomery-fitzgerald.{n}@example-health-mail.test",
        "address": {
            "line1": "12345 North Lake Shore Drive",
            "line2": "Apartment 4107",
            "city": "Chicago",
            "state": "IL",
            "postal_code": "60611-4102",
        },
        "status": "active",
        "first_visit_date": "2019-04-02",
        "primary_provider": "Dr. Jonathan Whitaker, DC",
        "referral_source": "Google Business Profile",
        "attorney": "Goldberg, Whitman & Associates LLP",
        "care_package": "Corrective Care 24 Visits",
        "fee_schedule": "Personal Injury Standard 2024",
        "insurance_company": "Blue Cross Blue Shield of Illinois",
        "paid_total": "12345.67",
        "tags": ["personal injury", "newsletter", "vip", "referred a friend"],
        "sms_opt_out": False,
        "email_opt_out": False,
    }


def test_a_bulk_of_5000_full_patients_fits(api):
    body = json.dumps({"patients": [full_patient(n) for n in range(5000)]})
    assert len(body) > 2.5 * 1024 * 1024  # Django's default limit refused it
    response = api.post("/api/v1/patients:bulk", body, content_type=JSON)
    assert response.status_code == 200, response.content[:300]
    assert response.json()["created"] == 5000


def test_an_unexpected_failure_is_a_json_500_without_details_and_is_logged(
    api, monkeypatch, caplog
):
    def explode(**kwargs):
        message = "Zebulon Quixote, born 1980-02-03"  # as a database error quotes values
        raise RuntimeError(message)

    monkeypatch.setattr(patient_apis, "patients_upsert", explode)
    with caplog.at_level(logging.ERROR):
        response = api.put("/api/v1/patients/P1", {"first_name": "Ann"}, content_type=JSON)
    assert_shape(response, 500)
    assert "Zebulon" not in response.content.decode()
    assert "Traceback" not in response.content.decode()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "RuntimeError" in logged
    assert "patients/<str:external_id>" in logged
    assert "Zebulon" not in logged
    assert "1980-02-03" not in logged


def test_unknown_routes_and_ids_are_json_404(api):
    assert_shape(api.get("/api/v1/nowhere"), 404)
    assert_shape(api.get("/api/v1/campaigns/abc"), 404)
    assert_shape(api.get("/api/v1/patients/NOPE"), 404)


def test_a_wrong_method_is_json_405(api):
    assert_shape(api.delete("/api/v1/patients"), 405)


def test_no_key_and_a_wrong_key_are_json_401():
    assert_shape(Client().get("/api/v1/patients"), 401)
    bad = Client(headers={"Authorization": "Api-Key ts_nope"})
    assert_shape(bad.get("/api/v1/patients"), 401)


def test_an_unsupported_media_type_is_json_415(api):
    response = api.post("/api/v1/patients:bulk", "<x/>", content_type="application/xml")
    assert_shape(response, 415)


@pytest.mark.parametrize(
    ("path", "status"), [("/api/v1/patients", 413), ("/patients/import/", 400)]
)
def test_djangos_400_view_answers_json_413_under_api_only(path, status):
    request = RequestFactory().post(path)
    response = api_errors.bad_request(request, RequestDataTooBig("too big"))
    assert response.status_code == status
    assert (response["Content-Type"] == "application/json") == path.startswith("/api/")


def test_djangos_500_view_answers_json_under_api_only():
    response = api_errors.server_error(RequestFactory().get("/api/v1/patients"))
    assert_shape(response, 500)
    assert (
        "text/html" in api_errors.server_error(RequestFactory().get("/patients/"))["Content-Type"]
    )
