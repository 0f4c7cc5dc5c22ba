"""REST API v1 contract tests for patients, cases and appointments (DESIGN §4.1)."""

from __future__ import annotations

import pytest
from django.test import Client

from patients.models import Appointment, Case, Patient
from tests.factories import PracticeFactory
from trackstat.models import AuditEvent, Role
from trackstat.services import api_key_create

pytestmark = pytest.mark.django_db

PATIENT = {
    "first_name": "Ann",
    "last_name": "Lee",
    "birth_date": "1980-02-29",
    "sex": "F",
    "phone": "(312) 555-0142",
    "email": "ann@example.test",
    "address": {
        "line1": "1 Main St",
        "line2": "",
        "city": "Chicago",
        "state": "IL",
        "postal_code": "60601",
    },
    "status": "active",
    "first_visit_date": "2020-05-01",
    "primary_provider": "Dr. Smith",
    "referral_source": "Google",
    "attorney": "Saul Goodman",
    "care_package": "Wellness 12",
    "fee_schedule": "Standard",
    "insurance_company": "Acme Health",
    "paid_total": "1250.50",
    "tags": ["vip", "newsletter"],
}


@pytest.fixture
def practice():
    return PracticeFactory(time_zone="America/Chicago")


def put(client: Client, url: str, body) -> object:
    return client.put(url, body, content_type="application/json")


def post(client: Client, url: str, body) -> object:
    return client.post(url, body, content_type="application/json")


# --- patients -----------------------------------------------------------------------------


def test_put_creates_then_updates_a_patient(api, practice):
    response = put(api, "/api/v1/patients/P1", PATIENT)
    assert response.status_code == 201
    body = response.json()
    assert body["external_id"] == "P1"
    assert body["phone"] == "+13125550142"
    assert body["address"]["city"] == "Chicago"
    assert body["primary_provider"] == "Dr. Smith"
    assert body["tags"] == ["newsletter", "vip"]
    assert body["paid_total"] == "1250.50"
    assert body["first_visit_date"] == "2020-05-01"
    patient = Patient.objects.get(practice=practice, external_id="P1")
    assert (patient.birth_month, patient.birth_day) == (2, 29)

    response = put(api, "/api/v1/patients/P1", {"last_name": "Lee-Park"})
    assert response.status_code == 200
    body = response.json()
    assert body["last_name"] == "Lee-Park"
    assert body["first_name"] == "Ann"  # absent fields are left as they are
    assert body["tags"] == ["newsletter", "vip"]


def test_resending_the_same_payload_changes_nothing(api):
    put(api, "/api/v1/patients/P1", {**PATIENT, "sms_opt_out": True})
    before = Patient.objects.get()
    audits = AuditEvent.objects.count()
    response = put(api, "/api/v1/patients/P1", {**PATIENT, "sms_opt_out": True})
    assert response.status_code == 200
    after = Patient.objects.get()
    assert after.updated_at == before.updated_at
    assert after.sms_opt_out_at == before.sms_opt_out_at
    assert AuditEvent.objects.count() == audits


def test_null_and_blank_clear_a_field(api):
    put(api, "/api/v1/patients/P1", PATIENT)
    body = put(
        api,
        "/api/v1/patients/P1",
        {"email": None, "phone": "", "primary_provider": None, "birth_date": None, "tags": []},
    ).json()
    assert body["email"] == ""
    assert body["phone"] == ""
    assert body["primary_provider"] is None
    assert body["birth_date"] is None
    assert body["tags"] == []
    assert Patient.objects.get().birth_month is None


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("Active", "active"),
        ("Inactive", "inactive"),  # ChiroTouch
        ("DECEASED", "deceased"),  # ChiroTouch
        ("Discharged", "discharged"),  # ClinicMind
    ],
)
def test_emr_statuses_are_mapped(api, given, stored):
    assert put(api, "/api/v1/patients/P1", {"status": given}).json()["status"] == stored


@pytest.mark.parametrize(
    ("given", "stored"), [("male", "M"), ("F", "F"), ("Other", "X"), ("unknown", "U")]
)
def test_sex_spellings_are_mapped(api, given, stored):
    assert put(api, "/api/v1/patients/P1", {"sex": given}).json()["sex"] == stored


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("birth_date", "29/02/1980"),
        ("birth_date", "1850-01-01"),
        ("sex", "Q"),
        ("phone", "555-01"),
        ("phone", "+1 312 555"),
        ("email", "not-an-email"),
        ("status", "zombie"),
        ("paid_total", "-5"),
        ("paid_total", "lots"),
        ("tags", "vip"),
        ("first_visit_date", "soon"),
        ("sms_opt_out", "maybe"),
        ("first_name", "x" * 101),
    ],
)
def test_each_invalid_field_is_400_naming_it_and_stores_nothing(api, field, value):
    response = put(api, "/api/v1/patients/P1", {**PATIENT, field: value})
    assert response.status_code == 400
    assert list(response.json()["errors"]) == [field]
    assert not Patient.objects.exists()


def test_invalid_update_leaves_the_stored_patient_whole(api):
    put(api, "/api/v1/patients/P1", PATIENT)
    response = put(api, "/api/v1/patients/P1", {"first_name": "Changed", "phone": "12"})
    assert response.status_code == 400
    assert Patient.objects.get().first_name == "Ann"


def test_invalid_address_part_is_named(api):
    response = put(api, "/api/v1/patients/P1", {"address": {"city": "x" * 101}})
    assert response.status_code == 400
    assert "city" in response.json()["errors"]["address"]


def test_phone_error_does_not_echo_the_number(api):
    response = put(api, "/api/v1/patients/P1", {"phone": "312-555-01"})
    assert "312" not in response.text


def test_external_id_in_body_must_match_the_url(api):
    response = put(api, "/api/v1/patients/P1", {"external_id": "P2"})
    assert response.status_code == 400
    assert "external_id" in response.json()["errors"]


def test_body_must_be_an_object(api):
    response = put(api, "/api/v1/patients/P1", ["not", "an", "object"])
    assert response.status_code == 400
    assert "errors" in response.json()


def test_opt_out_from_the_emr_is_recorded_and_audited(api):
    body = put(api, "/api/v1/patients/P1", {**PATIENT, "email_opt_out": True}).json()
    assert body["email_opt_out"] is True
    assert body["email_opt_out_source"] == "emr"
    assert body["email_opt_out_at"] is not None
    body = put(api, "/api/v1/patients/P1", {"email_opt_out": False}).json()
    assert body["email_opt_out"] is False
    assert body["email_opt_out_at"] is None
    events = AuditEvent.objects.filter(action="patient.opt_out_sync").order_by("id")
    assert [e.after["email_opt_out"] for e in events] == [True, False]
    assert events[0].actor_label.startswith("api-key:")


def test_get_patient_and_unknown_patient(api):
    put(api, "/api/v1/patients/P1", PATIENT)
    assert api.get("/api/v1/patients/P1").json()["last_name"] == "Lee"
    assert api.get("/api/v1/patients/NOPE").status_code == 404


def test_list_is_paginated_and_filterable(api):
    for n in range(55):
        put(
            api,
            f"/api/v1/patients/P{n:02d}",
            {"last_name": f"Name{n:02d}", "tags": ["t"] * (n % 2)},
        )
    page = api.get("/api/v1/patients").json()
    assert page["count"] == 55
    assert len(page["results"]) == 50
    assert page["previous"] is None
    second = api.get(page["next"].replace("http://testserver", "")).json()
    assert len(second["results"]) == 5
    assert second["next"] is None
    assert api.get("/api/v1/patients?tag=t").json()["count"] == 27
    assert api.get("/api/v1/patients?q=Name07").json()["results"][0]["external_id"] == "P07"


def test_list_query_count_does_not_grow_with_patients(api, django_assert_max_num_queries):
    for n in range(30):
        put(api, f"/api/v1/patients/P{n}", {**PATIENT, "tags": ["a", "b"]})
    with django_assert_max_num_queries(6):
        assert api.get("/api/v1/patients").status_code == 200


def test_another_practices_key_gets_404(api):
    put(api, "/api/v1/patients/P1", PATIENT)
    other_key = api_key_create(practice=PracticeFactory(), name="x").secret
    other = Client(headers={"Authorization": f"Api-Key {other_key}"})
    assert other.get("/api/v1/patients/P1").status_code == 404
    assert other.get("/api/v1/patients").json()["count"] == 0
    # The same external id in another practice is another patient.
    assert put(other, "/api/v1/patients/P1", {"first_name": "Zed"}).status_code == 201
    assert api.get("/api/v1/patients/P1").json()["first_name"] == "Ann"


@pytest.mark.parametrize("header", [None, "Api-Key ts_00000000_wrong", "Bearer abc"])
def test_no_or_wrong_key_is_401(header):
    headers = {"Authorization": header} if header else {}
    client = Client(headers=headers)
    assert client.get("/api/v1/patients").status_code == 401
    assert put(client, "/api/v1/patients/P1", PATIENT).status_code == 401
    assert not Patient.objects.exists()


def test_wrong_method_is_405(api):
    assert api.delete("/api/v1/patients/P1").status_code == 405
    assert api.get("/api/v1/patients:bulk").status_code == 405


def test_session_user_sees_no_financial_field_but_manager_does(member_client, practice):
    user = member_client(Role.USER, practice=practice)
    manager = member_client(Role.MANAGER, practice=practice)
    put(manager, "/api/v1/patients/P1", PATIENT)
    assert "paid_total" not in user.get("/api/v1/patients/P1").json()
    assert "paid_total" not in user.get("/api/v1/patients").json()["results"][0]
    assert manager.get("/api/v1/patients/P1").json()["paid_total"] == "1250.50"


# --- bulk -------------------------------------------------------------------------------


def test_bulk_partial_success(api):
    put(api, "/api/v1/patients/P0", {"first_name": "Old"})
    response = post(
        api,
        "/api/v1/patients:bulk",
        {
            "patients": [
                {"external_id": "P0", "first_name": "New"},
                {"external_id": "P1", "phone": "123"},
                {"external_id": "P2", "first_name": "Two"},
                {"external_id": "P2", "first_name": "Again"},
                "not an object",
                {"first_name": "No id"},
            ]
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["created"], body["updated"], body["unchanged"]) == (1, 1, 0)
    errors = {e["index"]: e for e in body["errors"]}
    assert set(errors) == {1, 3, 4, 5}
    assert errors[1]["external_id"] == "P1"
    assert list(errors[1]["errors"]) == ["phone"]
    assert list(errors[3]["errors"]) == ["external_id"]
    assert list(errors[5]["errors"]) == ["external_id"]
    assert set(Patient.objects.values_list("external_id", flat=True)) == {"P0", "P2"}
    assert Patient.objects.get(external_id="P0").first_name == "New"
    assert Patient.objects.get(external_id="P2").first_name == "Two"


def test_bulk_resend_reports_unchanged(api):
    payload = {"patients": [{**PATIENT, "external_id": f"P{n}"} for n in range(20)]}
    assert post(api, "/api/v1/patients:bulk", payload).json()["created"] == 20
    again = post(api, "/api/v1/patients:bulk", payload).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 20)


def test_bulk_limits_and_envelope(api):
    too_many = {"patients": [{"external_id": str(n)} for n in range(5001)]}
    response = post(api, "/api/v1/patients:bulk", too_many)
    assert response.status_code == 400
    assert "patients" in response.json()["errors"]
    assert post(api, "/api/v1/patients:bulk", {"patient": []}).status_code == 400
    assert post(api, "/api/v1/patients:bulk", {"patients": {}}).status_code == 400
    assert not Patient.objects.exists()


def test_bulk_query_count_does_not_grow_with_records(api, django_assert_max_num_queries):
    def batch(n, offset=0):
        return {"patients": [{**PATIENT, "external_id": f"P{offset + i}"} for i in range(n)]}

    with django_assert_max_num_queries(40) as small:
        post(api, "/api/v1/patients:bulk", batch(5))
    with django_assert_max_num_queries(len(small.captured_queries)):
        post(api, "/api/v1/patients:bulk", batch(200, offset=100))
    assert Patient.objects.count() == 205


# --- cases ------------------------------------------------------------------------------


def test_put_case(api):
    put(api, "/api/v1/patients/P1", PATIENT)
    response = put(
        api,
        "/api/v1/cases/C1",
        {
            "patient_external_id": "P1",
            "case_type": "Personal Injury",
            "diagnoses": ["M54.5", "S13.4XXA"],
            "attorney": "Saul Goodman",
            "status": "open",
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert body["diagnoses"] == ["M54.5", "S13.4XXA"]
    assert body["case_type"] == "Personal Injury"
    body = put(api, "/api/v1/cases/C1", {"diagnoses": ["M54.5"]}).json()
    assert body["diagnoses"] == ["M54.5"]
    assert body["patient_external_id"] == "P1"
    assert api.get("/api/v1/cases/C1").status_code == 200


def test_case_for_unknown_patient_is_400_and_stores_nothing(api):
    response = put(api, "/api/v1/cases/C1", {"patient_external_id": "NOPE", "case_type": "PI"})
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["patient_external_id"]
    assert not Case.objects.exists()


def test_new_case_needs_a_patient(api):
    response = put(api, "/api/v1/cases/C1", {"case_type": "PI"})
    assert response.status_code == 400
    assert "patient_external_id" in response.json()["errors"]


# --- appointments -----------------------------------------------------------------------


def appointment(**changes) -> dict:
    return {
        "patient_external_id": "P1",
        "start": "2026-03-09T09:30:00-05:00",
        "duration_minutes": 30,
        "status": "scheduled",
        "purpose": "Adjustment",
        "provider": "Dr. Smith",
        "services": ["98940"],
        **changes,
    }


def test_put_appointment_and_booked_at(api):
    put(api, "/api/v1/patients/P1", PATIENT)
    response = put(api, "/api/v1/appointments/A1", appointment())
    assert response.status_code == 201
    body = response.json()
    assert body["purpose"] == "Adjustment"
    assert body["services"] == ["98940"]
    first_booked = body["booked_at"]
    assert first_booked  # the time it was first received
    row = Appointment.objects.get()
    assert str(row.local_date) == "2026-03-09"
    again = put(api, "/api/v1/appointments/A1", appointment(status="confirmed")).json()
    assert again["booked_at"] == first_booked  # kept on update
    assert again["status"] == "confirmed"
    emr_booked = put(
        api, "/api/v1/appointments/A1", appointment(booked_at="2026-03-01T12:00:00+00:00")
    ).json()
    assert emr_booked["booked_at"] == "2026-03-01T12:00:00Z"


def test_appointment_for_unknown_patient_is_400_and_stores_nothing(api):
    response = put(api, "/api/v1/appointments/A1", appointment(patient_external_id="NOPE"))
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["patient_external_id"]
    assert not Appointment.objects.exists()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"start": "2026-03-09T09:30:00"}, "start"),  # no offset
        ({"start": "tomorrow"}, "start"),
        ({"status": "teleported"}, "status"),
        ({"duration_minutes": -5}, "duration_minutes"),
        ({"checked_in_at": "2026-03-09 09:31"}, "checked_in_at"),
        ({"services": "98940"}, "services"),
        ({"case_external_id": "NOPE"}, "case_external_id"),
    ],
)
def test_invalid_appointment_fields_are_named(api, changes, field):
    put(api, "/api/v1/patients/P1", PATIENT)
    response = put(api, "/api/v1/appointments/A1", appointment(**changes))
    assert response.status_code == 400
    assert list(response.json()["errors"]) == [field]
    assert not Appointment.objects.exists()


def test_new_appointment_needs_start_and_patient(api):
    put(api, "/api/v1/patients/P1", PATIENT)
    no_start = {k: v for k, v in appointment().items() if k != "start"}
    assert list(put(api, "/api/v1/appointments/A1", no_start).json()["errors"]) == ["start"]
    no_patient = {k: v for k, v in appointment().items() if k != "patient_external_id"}
    response = put(api, "/api/v1/appointments/A1", no_patient)
    assert list(response.json()["errors"]) == ["patient_external_id"]


def test_appointment_case_must_belong_to_the_patient(api):
    put(api, "/api/v1/patients/P1", PATIENT)
    put(api, "/api/v1/patients/P2", PATIENT)
    put(api, "/api/v1/cases/C2", {"patient_external_id": "P2"})
    response = put(api, "/api/v1/appointments/A1", appointment(case_external_id="C2"))
    assert response.status_code == 400
    assert "another patient" in response.json()["errors"]["case_external_id"][0]


def test_appointments_bulk_partial_success_and_resend(api):
    put(api, "/api/v1/patients/P1", PATIENT)
    payload = {
        "appointments": [
            {"external_id": "A1", **appointment()},
            {"external_id": "A2", **appointment(patient_external_id="NOPE")},
            {"external_id": "A3", **appointment(status="completed")},
        ]
    }
    body = post(api, "/api/v1/appointments:bulk", payload).json()
    assert (body["created"], body["updated"]) == (2, 0)
    assert [e["index"] for e in body["errors"]] == [1]
    again = post(api, "/api/v1/appointments:bulk", payload).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 2)
    assert api.get("/api/v1/patients/P1").json()["visit_count"] == 1


def test_appointment_list_and_detail(api):
    put(api, "/api/v1/patients/P1", PATIENT)
    put(api, "/api/v1/appointments/A1", appointment())
    assert api.get("/api/v1/appointments?patient=P1").json()["count"] == 1
    assert api.get("/api/v1/appointments/A1").json()["patient_external_id"] == "P1"
    assert api.get("/api/v1/appointments/NOPE").status_code == 404


def test_schema_documents_the_sync_endpoints():
    schema = Client().get("/api/schema/").content.decode()
    for path in [
        "/api/v1/patients/{external_id}",
        "/api/v1/patients:bulk",
        "/api/v1/cases/{external_id}",
        "/api/v1/appointments/{external_id}",
        "/api/v1/appointments:bulk",
        "/api/v1/imports/patients.csv",
    ]:
        assert path in schema, path


def test_session_writes_need_a_manager_reads_do_not(member_client, practice):
    user = member_client(Role.USER_PLUS, practice=practice)
    assert put(user, "/api/v1/patients/P1", PATIENT).status_code == 403
    assert post(user, "/api/v1/patients:bulk", {"patients": [PATIENT]}).status_code == 403
    assert put(user, "/api/v1/appointments/A1", appointment()).status_code == 403
    assert not Patient.objects.exists()
    assert user.get("/api/v1/patients").status_code == 200
