"""Bulk, FHIR and CSV never lose the good records for one bad one (issue 13, item 7), even
when the bad one passes validation and only the database refuses it.

To make the database refuse a record that validation accepts, the PostgreSQL tests add a
CHECK constraint inside the test's transaction (rolled back with it): a patient named
"Unstorable" cannot be written, as a value the validation missed could not.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse

from patients.models import Appointment, Patient
from patients.sync.appointments import appointments_upsert
from patients.sync.patients import patients_upsert
from patients.sync.upsert import UNSTORABLE_MESSAGE
from tests.factories import PatientFactory, PracticeFactory
from trackstat.models import Role

pytestmark = pytest.mark.django_db

JSON = "application/json"
needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="adds a CHECK constraint inside the test's transaction, which PostgreSQL's "
    "transactional DDL rolls back; SQLite cannot add one to an existing table",
)


@pytest.fixture
def unstorable_name():
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE patients_patient ADD CONSTRAINT test_refuses_unstorable "
            "CHECK (last_name <> 'Unstorable')"
        )
    return "Unstorable"


def refused(index: int, external_id: str) -> dict:
    return {
        "index": index,
        "external_id": external_id,
        "errors": {"non_field_errors": [UNSTORABLE_MESSAGE]},
    }


# --- the services, portable: a negative duration breaks a CHECK on any database -------------


def test_a_record_the_database_refuses_is_reported_and_the_others_written():
    practice = PracticeFactory()
    patient = PatientFactory(practice=practice, external_id="P1")
    start = dt.datetime(2026, 3, 9, 14, tzinfo=dt.UTC)
    records = [
        {"_index": n, "external_id": f"A{n}", "patient_external_id": "P1", "start": start}
        for n in range(7)
    ]
    records[4]["duration_minutes"] = -5  # as a validation gap would let through
    result = appointments_upsert(practice=practice, records=records)

    assert result.created == 6
    assert result.errors == [refused(4, "A4")]
    assert sorted(Appointment.objects.values_list("external_id", flat=True)) == [
        f"A{n}" for n in range(7) if n != 4
    ]
    patient.refresh_from_db()
    assert patient.last_visit_scheduled == dt.date(2026, 3, 9)


def test_two_refused_records_in_one_batch_are_both_found():
    practice = PracticeFactory()
    PatientFactory(practice=practice, external_id="P1")
    start = dt.datetime(2026, 3, 9, 14, tzinfo=dt.UTC)
    records = [
        {
            "_index": n,
            "external_id": f"A{n}",
            "patient_external_id": "P1",
            "start": start,
            "duration_minutes": -1 if n in (0, 9) else 30,
        }
        for n in range(10)
    ]
    result = appointments_upsert(practice=practice, records=records)
    assert result.created == 8
    assert [e["index"] for e in result.errors] == [0, 9]


# --- through the API, on PostgreSQL ----------------------------------------------------------


@needs_postgres
def test_bulk_keeps_the_good_records_when_the_database_refuses_one(api, unstorable_name):
    patients = [{"external_id": f"P{n}", "last_name": f"Lee {n}"} for n in range(50)]
    patients[37]["last_name"] = unstorable_name
    response = api.post("/api/v1/patients:bulk", json.dumps({"patients": patients}), JSON)

    assert response.status_code == 200, response.content[:300]
    assert response.json()["created"] == 49
    assert response.json()["errors"] == [refused(37, "P37")]
    assert Patient.objects.count() == 49
    assert not Patient.objects.filter(external_id="P37").exists()


@needs_postgres
def test_a_put_the_database_refuses_is_a_400_not_a_500(api, unstorable_name):
    response = api.put("/api/v1/patients/P1", {"last_name": unstorable_name}, content_type=JSON)
    assert response.status_code == 400
    assert response.json() == {"errors": {"non_field_errors": [UNSTORABLE_MESSAGE]}}
    assert not Patient.objects.exists()


@needs_postgres
def test_fhir_keeps_the_good_entries_when_the_database_refuses_one(api, unstorable_name):
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "p1", "name": [{"family": "Lee"}]}},
            {
                "resource": {
                    "resourceType": "Patient",
                    "id": "p2",
                    "name": [{"family": unstorable_name}],
                }
            },
        ],
    }
    response = api.post("/api/v1/fhir", json.dumps(bundle), content_type=JSON)
    assert response.status_code == 200, response.content
    assert response.json()["patients"]["created"] == 1
    assert response.json()["errors"] == [
        {
            "index": 1,
            "resource_type": "Patient",
            "external_id": "p2",
            "errors": {"non_field_errors": [UNSTORABLE_MESSAGE]},
        }
    ]
    assert list(Patient.objects.values_list("external_id", flat=True)) == ["p1"]


def _ten_thousand_rows(bad_row: int, bad_name: str) -> str:
    """A CSV of 10,000 patients; ``bad_row`` (a spreadsheet's row number, the header being 1)
    carries ``bad_name``."""
    lines = ["external_id,first_name,last_name"]
    for row in range(2, 10_002):
        lines.append(f"P{row},Pat,{bad_name if row == bad_row else f'Row {row}'}")
    return "\n".join(lines) + "\n"


@needs_postgres
def test_csv_with_a_row_the_database_refuses_saves_every_other_row(api, unstorable_name):
    """A 10,000-row file whose row 7,002 failed at write committed the first 5,000 rows and
    answered 500."""
    text = _ten_thousand_rows(7002, unstorable_name)
    response = api.post("/api/v1/imports/patients.csv", text, content_type="text/csv")

    assert response.status_code == 200, response.content[:300]
    body = response.json()
    assert (body["rows"], body["created"]) == (10_000, 9_999)
    assert [(e["row"], e["external_id"], e["errors"]) for e in body["errors"]] == [
        (7002, "P7002", {"non_field_errors": [UNSTORABLE_MESSAGE]})
    ]
    assert Patient.objects.count() == 9_999
    assert not Patient.objects.filter(external_id="P7002").exists()


@needs_postgres
def test_the_upload_page_shows_the_same_rows(member_client, unstorable_name):
    manager_client = member_client(Role.MANAGER)
    text = _ten_thousand_rows(7002, unstorable_name)
    upload = SimpleUploadedFile("patients.csv", text.encode(), "text/csv")
    response = manager_client.post(reverse("patients:import"), {"file": upload}, follow=True)

    assert response.status_code == 200
    page = response.text
    assert '<dd id="result-rows">10000</dd>' in page
    assert '<dd id="result-saved">9999</dd>' in page
    assert '<dd id="result-errors">1</dd>' in page
    assert "<tr><td>7002</td><td><code>P7002</code></td><td><code>row</code></td>" in page
    assert UNSTORABLE_MESSAGE in page
    assert Patient.objects.filter(practice=manager_client.membership.practice).count() == 9_999


def test_a_csv_import_that_fails_as_a_whole_saves_no_row(api, monkeypatch):
    """The file is one transaction: a failure after the first chunk leaves nothing half
    imported (and the answer, a 500, says so)."""
    from patients.sync import csv as csv_import

    calls = []

    def upsert_then_fail(**kwargs):
        calls.append(len(kwargs["records"]))
        if len(calls) == 2:
            raise RuntimeError("the worker died")
        return patients_upsert(**kwargs)

    monkeypatch.setattr(csv_import, "patients_upsert", upsert_then_fail)
    text = _ten_thousand_rows(0, "")
    response = api.post("/api/v1/imports/patients.csv", text, content_type="text/csv")

    assert response.status_code == 500
    assert calls == [5_000, 5_000]
    assert not Patient.objects.exists()


@needs_postgres
def test_a_refused_record_is_logged_without_its_values(api, unstorable_name, caplog):
    patients = [{"external_id": "P1", "first_name": "Zebulon", "last_name": unstorable_name}]
    with caplog.at_level("WARNING", logger="patients.sync.upsert"):
        api.post("/api/v1/patients:bulk", json.dumps({"patients": patients}), JSON)
    [record] = [r for r in caplog.records if r.name == "patients.sync.upsert"]
    logged = record.getMessage()
    assert "patients_write: record 0 refused by the database (IntegrityError 23514)" in logged
    assert "Zebulon" not in logged
    assert unstorable_name not in logged
