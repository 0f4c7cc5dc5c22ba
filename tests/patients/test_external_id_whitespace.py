"""An external id with surrounding whitespace is trimmed on write and on read alike (issue 13,
item 9): the write used to succeed (stored trimmed) and the read of the same URL answer 404."""

from __future__ import annotations

import pytest

from patients.models import Appointment, Case, Patient

pytestmark = pytest.mark.django_db

JSON = "application/json"


@pytest.mark.parametrize("sent", ["%20P1%20", "P1%20", "%09P1"])
def test_put_then_get_with_spaces_around_the_id(api, sent):
    response = api.put(f"/api/v1/patients/{sent}", {"first_name": "Ann"}, content_type=JSON)
    assert response.status_code == 201, response.content
    assert response.json()["external_id"] == "P1"
    assert api.get(f"/api/v1/patients/{sent}").json()["first_name"] == "Ann"
    assert api.get("/api/v1/patients/P1").status_code == 200
    again = api.put(f"/api/v1/patients/{sent}", {"first_name": "Ann"}, content_type=JSON)
    assert again.status_code == 200
    assert list(Patient.objects.values_list("external_id", flat=True)) == ["P1"]


def test_the_body_may_repeat_the_id_with_or_without_the_spaces(api):
    response = api.put("/api/v1/patients/%20P1", {"external_id": "P1 "}, content_type=JSON)
    assert response.status_code == 201, response.content
    response = api.put("/api/v1/patients/P1", {"external_id": "P2"}, content_type=JSON)
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["external_id"]


def test_cases_and_appointments_too(api):
    api.put("/api/v1/patients/P1", {}, content_type=JSON)
    case = api.put("/api/v1/cases/%20C1%20", {"patient_external_id": " P1 "}, content_type=JSON)
    assert case.status_code == 201, case.content
    assert api.get("/api/v1/cases/%20C1%20").json()["patient_external_id"] == "P1"
    body = {"patient_external_id": "P1 ", "start": "2026-03-09T09:30:00-05:00"}
    appointment = api.put("/api/v1/appointments/%20A1", body, content_type=JSON)
    assert appointment.status_code == 201, appointment.content
    assert api.get("/api/v1/appointments/%20A1").json()["external_id"] == "A1"
    assert (Case.objects.get().external_id, Appointment.objects.get().external_id) == ("C1", "A1")


def test_query_parameters_naming_a_patient_are_trimmed_too(api):
    api.put("/api/v1/patients/P1", {}, content_type=JSON)
    api.put(
        "/api/v1/appointments/A1",
        {"patient_external_id": "P1", "start": "2026-03-09T09:30:00-05:00"},
        content_type=JSON,
    )
    assert api.get("/api/v1/appointments", {"patient": " P1 "}).json()["count"] == 1
    assert api.get("/api/v1/messages", {"patient": " P1 "}).status_code == 200


def test_a_blank_id_is_refused(api):
    response = api.put("/api/v1/patients/%20%20", {}, content_type=JSON)
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["external_id"]
    assert not Patient.objects.exists()
