"""``POST /api/v1/fhir``: FHIR R4 Bundle import (DESIGN §4.1, patients.sync.fhir)."""

from __future__ import annotations

import copy
import datetime as dt
import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from patients.models import Appointment, Patient
from patients.sync.fhir.mapping import bundle_map
from tests.factories import PracticeFactory
from trackstat.models import Role
from trackstat.services import api_key_create

pytestmark = pytest.mark.django_db

URL = "/api/v1/fhir"
MR = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}
CHICAGO = dt.timezone(dt.timedelta(hours=-6))


@pytest.fixture
def practice():
    return PracticeFactory(time_zone="America/Chicago")


def post(client: Client, body, content_type: str = "application/json"):
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post(URL, data, content_type=content_type)


def bundle(*resources, bundle_type: str = "batch", full_urls=()) -> dict:
    entries = [{"resource": resource} for resource in resources]
    for entry, full_url in zip(entries, full_urls, strict=False):
        if full_url:
            entry["fullUrl"] = full_url
    return {"resourceType": "Bundle", "type": bundle_type, "entry": entries}


def patient(resource_id: str = "p1", **fields) -> dict:
    return {"resourceType": "Patient", "id": resource_id, **fields}


def appointment(
    resource_id: str = "a1",
    patient_ref: str = "Patient/p1",
    start: str = "2026-01-15T09:30:00-06:00",
    **fields,
) -> dict:
    return {
        "resourceType": "Appointment",
        "id": resource_id,
        "status": "booked",
        "start": start,
        "minutesDuration": 30,
        "participant": [{"actor": {"reference": patient_ref}, "status": "accepted"}],
        **fields,
    }


def encounter(resource_id: str = "e1", status: str = "finished", **fields) -> dict:
    return {
        "resourceType": "Encounter",
        "id": resource_id,
        "status": status,
        "period": {"start": "2026-01-15T09:32:00-06:00", "end": "2026-01-15T10:02:00-06:00"},
        **fields,
    }


FULL_PATIENT = patient(
    "p1",
    identifier=[
        {"system": "urn:oid:2.16.840.1.113883.4.1", "value": "123-45-6789"},
        {"type": MR, "system": "https://emr.example/mrn", "value": "MRN-1001"},
    ],
    name=[
        {"use": "usual", "given": ["Annie"], "family": "L."},
        {"use": "official", "given": ["Ann", "Marie"], "family": "Lee"},
    ],
    birthDate="1980-02-29",
    gender="female",
    telecom=[
        {"system": "phone", "use": "home", "value": "(312) 555-0100"},
        {"system": "phone", "use": "mobile", "value": "312-555-0142"},
        {"system": "email", "use": "home", "value": "ann@example.test"},
    ],
    address=[
        {
            "line": ["1 Main St", "Apt 2"],
            "city": "Chicago",
            "state": "IL",
            "postalCode": "60601",
        },
        {"line": ["9 Old Rd"], "city": "Elsewhere"},
    ],
)


def assert_nothing_stored():
    assert Patient.objects.count() == 0
    assert Appointment.objects.count() == 0


def entry_errors(response) -> dict[int, dict[str, list[str]]]:
    """The entries at fault: index → {FHIR element: [messages]}."""
    assert response.status_code == 200, response.content
    return {error["index"]: error["errors"] for error in response.json()["errors"]}


# Patients ---------------------------------------------------------------------------------------


def test_patient_fields_are_mapped(api):
    response = post(api, bundle(FULL_PATIENT))
    assert response.status_code == 200, response.content
    assert response.json() == {
        "patients": {"created": 1, "updated": 0, "unchanged": 0},
        "appointments": {"created": 0, "updated": 0, "unchanged": 0},
        "encounters": {"applied": 0, "skipped": 0},
        "consents": {"recorded": 0, "superseded": 0, "unchanged": 0, "skipped": 0},
        "errors": [],
    }
    body = api.get("/api/v1/patients/MRN-1001").json()
    assert body["first_name"] == "Ann"
    assert body["last_name"] == "Lee"
    assert body["birth_date"] == "1980-02-29"
    assert body["sex"] == "F"
    assert body["phone"] == "+13125550142"  # the mobile, not the first phone
    assert body["email"] == "ann@example.test"
    assert body["address"] == {
        "line1": "1 Main St",
        "line2": "Apt 2",
        "city": "Chicago",
        "state": "IL",
        "postal_code": "60601",
    }
    assert body["status"] == "active"


@pytest.mark.parametrize(
    ("fields", "external_id"),
    [
        ({"identifier": [{"value": "CT-1"}, {"type": MR, "value": "MRN-2"}]}, "MRN-2"),
        ({"identifier": [{"value": "CT-1"}, {"value": "CT-2"}]}, "CT-1"),
        ({"identifier": [{"system": "https://emr.example/no-value"}]}, "fhir-id-7"),
        ({}, "fhir-id-7"),
    ],
)
def test_patient_external_id_prefers_mr_then_first_identifier_then_id(api, fields, external_id):
    response = post(api, bundle(patient("fhir-id-7", **fields)))
    assert response.status_code == 200, response.content
    assert list(Patient.objects.values_list("external_id", flat=True)) == [external_id]


def test_first_phone_when_none_is_mobile_and_first_name_when_none_is_official(api):
    resource = patient(
        "p1",
        name=[{"given": ["Bo"], "family": "Diaz"}, {"given": ["Robert"], "family": "Diaz"}],
        telecom=[
            {"system": "email", "value": "bo@example.test"},
            {"system": "phone", "use": "work", "value": "+1 312 555 0177"},
            {"system": "phone", "use": "home", "value": "312 555 0188"},
        ],
    )
    assert post(api, bundle(resource)).status_code == 200
    stored = Patient.objects.get()
    assert (stored.first_name, stored.phone, stored.email) == (
        "Bo",
        "+13125550177",
        "bo@example.test",
    )


@pytest.mark.parametrize(
    ("gender", "sex"), [("male", "M"), ("female", "F"), ("other", "X"), ("unknown", "U")]
)
def test_gender_maps_to_sex(api, gender, sex):
    assert post(api, bundle(patient(gender=gender))).status_code == 200
    assert Patient.objects.get().sex == sex


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({}, "active"),
        ({"active": True}, "active"),
        ({"active": False}, "inactive"),
        ({"deceasedBoolean": True}, "deceased"),
        ({"deceasedBoolean": False}, "active"),
        ({"active": False, "deceasedDateTime": "2025-12-01T10:00:00-06:00"}, "deceased"),
    ],
)
def test_active_and_deceased_give_the_status(api, fields, status):
    assert post(api, bundle(patient(**fields))).status_code == 200
    assert Patient.objects.get().status == status


def test_absent_elements_leave_stored_values(api):
    assert post(api, bundle(FULL_PATIENT)).status_code == 200
    slim = patient("p1", identifier=FULL_PATIENT["identifier"], gender="female")
    response = post(api, bundle(slim))
    assert response.json()["patients"] == {"created": 0, "updated": 0, "unchanged": 1}
    assert Patient.objects.get().phone == "+13125550142"


# Appointments -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fhir_status", "status"),
    [
        ("proposed", "scheduled"),
        ("pending", "scheduled"),
        ("booked", "scheduled"),
        ("arrived", "checked_in"),
        ("checked-in", "checked_in"),
        ("fulfilled", "completed"),
        ("cancelled", "cancelled"),
        ("noshow", "no_show"),
        ("entered-in-error", "cancelled"),
    ],
)
def test_appointment_status_mapping(api, fhir_status, status):
    response = post(api, bundle(patient(), appointment(status=fhir_status)))
    assert response.status_code == 200, response.content
    assert Appointment.objects.get().status == status


def test_appointment_fields_and_patient_reference_to_the_bundles_patient(api):
    resource = appointment(
        "a1",
        identifier=[{"system": "https://emr.example/appt", "value": "APT-9"}],
        patient_ref="Patient/p1",  # the Patient's id, not its MR number
        serviceType=[{"coding": [{"code": "ADJ", "display": "Adjustment"}]}],
        created="2026-01-02T08:00:00-06:00",
    )
    resource["participant"].append(
        {"actor": {"reference": "Practitioner/dr-1", "display": "Dr. Smith"}}
    )
    response = post(api, bundle(FULL_PATIENT, resource))
    assert response.status_code == 200, response.content
    assert response.json()["appointments"] == {"created": 1, "updated": 0, "unchanged": 0}
    body = api.get("/api/v1/appointments/APT-9").json()
    assert body["patient_external_id"] == "MRN-1001"
    assert dt.datetime.fromisoformat(body["start"]) == dt.datetime(
        2026, 1, 15, 9, 30, tzinfo=CHICAGO
    )
    assert body["duration_minutes"] == 30
    assert body["status"] == "scheduled"
    assert body["provider"] == "Dr. Smith"
    assert body["purpose"] == "Adjustment"
    assert dt.datetime.fromisoformat(body["booked_at"]) == dt.datetime(
        2026, 1, 2, 8, 0, tzinfo=CHICAGO
    )


def test_urn_uuid_references_and_duration_from_end(api):
    patient_url = "urn:uuid:0b6f7a4e-6a0a-4c3e-9d6b-1f0e6b2f0001"
    resource = appointment(
        "a1",
        patient_ref=patient_url,
        end="2026-01-15T10:15:00-06:00",
        serviceType=[{"text": "New patient exam", "coding": [{"display": "Exam"}]}],
    )
    del resource["minutesDuration"]
    no_id_patient = {"resourceType": "Patient", "identifier": [{"type": MR, "value": "MRN-5"}]}
    response = post(api, bundle(no_id_patient, resource, full_urls=[patient_url]))
    assert response.status_code == 200, response.content
    stored = Appointment.objects.select_related("patient", "purpose").get()
    assert stored.patient.external_id == "MRN-5"
    assert stored.duration_minutes == 45
    assert stored.purpose.name == "New patient exam"


def test_reference_to_a_stored_patient(api):
    assert post(api, bundle(patient("MRN-7"))).status_code == 200
    response = post(api, bundle(appointment(patient_ref="https://emr.example/fhir/Patient/MRN-7")))
    assert response.status_code == 200, response.content
    assert Appointment.objects.get().patient.external_id == "MRN-7"


# Encounters -------------------------------------------------------------------------------------


def test_encounters_are_visits(api, practice):
    stored_patient = post(api, bundle(patient("MRN-8"), appointment("old", "Patient/MRN-8")))
    assert stored_patient.status_code == 200
    resources = [
        FULL_PATIENT,
        appointment("a1", start="2026-01-15T09:30:00-06:00"),
        # finished, naming the bundle's appointment
        encounter("e1", "finished", appointment=[{"reference": "Appointment/a1"}]),
        # in-progress, naming a stored appointment
        encounter(
            "e2",
            "in-progress",
            appointment=[{"reference": "Appointment/old"}],
            period={"start": "2026-01-15T09:35:00-06:00"},
        ),
        # finished, no appointment: a visit of its own
        encounter(
            "e3",
            "finished",
            identifier=[{"value": "ENC-3"}],
            subject={"reference": "Patient/p1"},
            period={"start": "2026-01-20T23:30:00-06:00", "end": "2026-01-21T00:10:00-06:00"},
            participant=[{"individual": {"reference": "Practitioner/dr", "display": "Dr. Ray"}}],
        ),
        # planned: ignored
        encounter("e4", "planned", subject={"reference": "Patient/p1"}),
    ]
    response = post(api, bundle(*resources))
    assert response.status_code == 200, response.content
    assert response.json()["encounters"] == {"applied": 3, "skipped": 1}
    assert response.json()["appointments"] == {"created": 2, "updated": 1, "unchanged": 0}

    booked = Appointment.objects.get(external_id="a1")
    assert booked.status == "completed"
    assert booked.checked_in_at == dt.datetime(2026, 1, 15, 9, 32, tzinfo=CHICAGO)
    old = Appointment.objects.get(external_id="old")
    assert old.status == "checked_in"
    assert old.checked_in_at == dt.datetime(2026, 1, 15, 9, 35, tzinfo=CHICAGO)
    own = Appointment.objects.select_related("patient", "provider").get(
        external_id="encounter-ENC-3"
    )
    assert own.patient.external_id == "MRN-1001"
    assert own.status == "completed"
    assert own.start == own.checked_in_at == dt.datetime(2026, 1, 20, 23, 30, tzinfo=CHICAGO)
    assert own.duration_minutes == 40
    assert own.provider.name == "Dr. Ray"
    assert not Appointment.objects.filter(external_id__contains="e4").exists()

    body = api.get("/api/v1/patients/MRN-1001").json()
    assert body["visit_count"] == 2
    assert body["last_visit_checked_in"] == "2026-01-20"  # local date in the practice's zone
    assert api.get("/api/v1/patients/MRN-8").json()["visit_count"] == 1


def test_encounter_may_name_the_bundles_appointment_by_its_identifier(api):
    resources = [
        patient(),
        appointment("a1", identifier=[{"value": "APT-9"}]),
        encounter("e1", appointment=[{"reference": "Appointment/APT-9"}]),
    ]
    for outcome in ("created", "unchanged"):
        response = post(api, bundle(*resources))
        assert response.status_code == 200, response.content
        assert response.json()["appointments"][outcome] == 1
    assert list(Appointment.objects.values_list("external_id", "status")) == [
        ("APT-9", "completed")
    ]


def test_encounter_naming_an_unknown_appointment_is_a_visit_of_its_own(api):
    resources = [
        patient(),
        encounter(
            "e9",
            appointment=[{"reference": "Appointment/nowhere"}],
            subject={"reference": "Patient/p1"},
        ),
    ]
    response = post(api, bundle(*resources))
    assert response.status_code == 200, response.content
    assert list(Appointment.objects.values_list("external_id", "status")) == [
        ("encounter-e9", "completed")
    ]


def test_same_bundle_twice_changes_nothing(api):
    resources = [
        FULL_PATIENT,
        appointment("a1", created="2026-01-02T08:00:00-06:00"),
        encounter("e1", appointment=[{"reference": "Appointment/a1"}]),
        encounter("e2", "in-progress", subject={"reference": "Patient/p1"}),
        encounter("e3", "cancelled"),
    ]
    first = post(api, bundle(*resources, bundle_type="transaction"))
    assert first.status_code == 200, first.content
    stored = list(Appointment.objects.values_list("external_id", "status", "updated_at"))
    second = post(api, bundle(*resources, bundle_type="transaction"))
    assert second.json() == {
        "patients": {"created": 0, "updated": 0, "unchanged": 1},
        "appointments": {"created": 0, "updated": 0, "unchanged": 2},
        "encounters": {"applied": 2, "skipped": 1},
        "consents": {"recorded": 0, "superseded": 0, "unchanged": 0, "skipped": 0},
        "errors": [],
    }
    assert list(Appointment.objects.values_list("external_id", "status", "updated_at")) == stored


@pytest.mark.parametrize("bundle_type", ["batch", "transaction", "collection"])
def test_bundle_types_and_fhir_media_type(api, bundle_type):
    response = post(api, bundle(patient(), bundle_type=bundle_type), "application/fhir+json")
    assert response.status_code == 200, response.content
    assert Patient.objects.count() == 1


def test_empty_bundle_imports_nothing(api):
    response = post(api, {"resourceType": "Bundle", "type": "collection"})
    assert response.status_code == 200
    assert response.json()["patients"] == {"created": 0, "updated": 0, "unchanged": 0}


# Malformed bundles: 400, the field named, nothing stored; invalid entries: reported one by one --


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("[1, 2]", "non_field_errors"),
        ("{not json", "non_field_errors"),
        ({"resourceType": "Patient", "type": "batch", "entry": []}, "resourceType"),
        ({"type": "batch", "entry": []}, "resourceType"),
        ({"resourceType": "Bundle", "type": "searchset", "entry": []}, "type"),
        ({"resourceType": "Bundle", "entry": []}, "type"),
        ({"resourceType": "Bundle", "type": "batch", "entry": {"resource": {}}}, "entry"),
    ],
)
def test_malformed_bundle_is_400_naming_the_field(api, body, field):
    response = post(api, body)
    assert response.status_code == 400
    assert list(response.json()["errors"]) == [field]
    assert_nothing_stored()


@pytest.mark.parametrize(
    ("resources", "entry", "element", "message", "patients"),
    [
        ([patient(), appointment(start="2026-01-15T09:30:00")], 1, "start", "Give an offset", 1),
        (
            [patient(), appointment(patient_ref="Patient/nobody")],
            1,
            "participant",
            "No patient with this external_id.",
            1,
        ),
        (
            [patient(), appointment(patient_ref="urn:uuid:11111111-2222-3333-4444-555555555555")],
            1,
            "participant",
            "A urn: reference matches no entry",
            1,
        ),
        (
            [patient(), {"resourceType": "Observation", "id": "o1", "status": "final"}],
            1,
            "resourceType",
            "Not supported; send Patient, Appointment, Encounter, Consent.",
            1,
        ),
        ([patient(), appointment(status="waitlist")], 1, "status", "Must be one", 1),
        ([patient(gender="f")], 0, "gender", "Must be one of", 0),
        ([patient(birthDate="1980")], 0, "birthDate", "Date has wrong format", 0),
        ([patient(birthDate="9999-12-31")], 0, "birthDate", "Must be between 1900-01-01", 0),
        ([patient(), patient()], 1, "identifier", "This external_id appears earlier", 1),
        ([{"resourceType": "Patient"}], 0, "identifier", "This field may not be null", 0),
        (
            [patient(), appointment(end="2026-01-15T08:00:00-06:00", minutesDuration=None)],
            1,
            "end",
            "Must not be before the start.",
            1,
        ),
        (
            [patient(), encounter(appointment=[{"reference": "Patient/p1"}])],
            1,
            "appointment",
            "Must reference an Appointment",
            1,
        ),
        (
            [patient(), encounter(period={"start": "2026-01-15"})],
            1,
            "period.start",
            "Must be a date and time with an offset.",
            1,
        ),
        ([patient(), encounter()], 1, "subject", "Required for a new appointment.", 1),
        ([patient(name="Ann Lee")], 0, "name", "Must be a list of objects.", 0),
        ([patient(name=[{"family": "x" * 101}])], 0, "name.family", "Ensure this field", 0),
    ],
)
def test_an_invalid_entry_is_reported_naming_entry_and_element_and_the_others_imported(
    api, resources, entry, element, message, patients
):
    response = post(api, bundle(*resources))
    errors = entry_errors(response)
    assert list(errors) == [entry]
    assert list(errors[entry]) == [element]
    assert any(text.startswith(message) for text in errors[entry][element]), errors
    assert Patient.objects.count() == patients
    assert not Appointment.objects.exists()
    assert response.json()["patients"]["created"] == patients


def test_valid_entries_are_saved_and_invalid_ones_reported(api):
    """One bad record used to throw the whole bundle away (issue 13, item 7)."""
    resources = [
        patient("p1", identifier=[{"type": MR, "value": "MRN-1"}]),
        patient("p2", identifier=[{"type": MR, "value": "MRN-2"}], birthDate="31/12/1980"),
        appointment("a1", patient_ref="Patient/p1"),
        appointment("a2", patient_ref="Patient/p2"),  # its patient is not imported
        encounter("e1", appointment=[{"reference": "Appointment/a1"}]),
        encounter("e2", appointment=[{"reference": "Appointment/a2"}]),
        {"resourceType": "Observation", "id": "o1"},
    ]
    response = post(api, bundle(*resources))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["patients"] == {"created": 1, "updated": 0, "unchanged": 0}
    assert body["appointments"] == {"created": 1, "updated": 0, "unchanged": 0}
    assert body["encounters"] == {"applied": 1, "skipped": 0}
    assert body["errors"] == [
        {
            "index": 1,
            "resource_type": "Patient",
            "external_id": "MRN-2",
            "errors": {"birthDate": ["Date has wrong format. Use YYYY-MM-DD."]},
        },
        {
            "index": 3,
            "resource_type": "Appointment",
            "external_id": "a2",
            "errors": {"participant": ["No patient with this external_id."]},
        },
        {
            "index": 5,
            "resource_type": "Encounter",
            "external_id": "e2",
            "errors": {
                "appointment": [
                    "Not applied: the appointment it names (entry[3]) was not imported."
                ]
            },
        },
        {
            "index": 6,
            "resource_type": None,
            "external_id": None,
            "errors": {
                "resourceType": ["Not supported; send Patient, Appointment, Encounter, Consent."]
            },
        },
    ]
    assert list(Patient.objects.values_list("external_id", flat=True)) == ["MRN-1"]
    assert list(Appointment.objects.values_list("external_id", "status")) == [("a1", "completed")]
    assert api.get("/api/v1/patients/MRN-1").json()["visit_count"] == 1


def test_every_problem_is_listed_in_entry_order(api):
    resources = [
        patient("p1", gender="robot"),
        patient("p2"),
        appointment("a1", patient_ref="Patient/p2", start="soon", status="late"),
    ]
    errors = entry_errors(post(api, bundle(*resources)))
    assert list(errors) == [0, 2]
    assert sorted(errors[2]) == ["start", "status"]
    assert list(Patient.objects.values_list("external_id", flat=True)) == ["p2"]


def test_errors_never_echo_patient_data(api):
    resource = patient(
        "p1",
        name=[{"given": ["Zebulon"], "family": "Quixote"}],
        telecom=[
            {"system": "phone", "value": "555-01"},
            {"system": "email", "value": "zeb-at-example"},
        ],
        birthDate="31/12/1980",
    )
    response = post(api, bundle(resource))
    errors = entry_errors(response)
    assert sum(len(messages) for messages in errors[0].values()) == 3
    text = response.content.decode()
    for secret in ("Zebulon", "Quixote", "555-01", "zeb-at-example", "31/12/1980"):
        assert secret not in text
    assert not Patient.objects.exists()


# Access ------------------------------------------------------------------------------------------


def test_no_api_key_is_401():
    response = post(Client(), bundle(patient()))
    assert response.status_code == 401
    assert_nothing_stored()


def test_get_is_405(api):
    assert api.get(URL).status_code == 405


def test_another_practices_key_cannot_see_the_imported_patients(api):
    assert post(api, bundle(FULL_PATIENT, appointment("a1"))).status_code == 200
    other_key = api_key_create(practice=PracticeFactory(), name="EMR").secret
    other = Client(headers={"Authorization": f"Api-Key {other_key}"})
    assert other.get("/api/v1/patients/MRN-1001").status_code == 404
    assert other.get("/api/v1/appointments/a1").status_code == 404
    assert other.get("/api/v1/patients").json()["count"] == 0


def test_same_ids_in_two_practices_stay_apart(api, practice):
    other = PracticeFactory()
    other_key = api_key_create(practice=other, name="EMR").secret
    other_api = Client(headers={"Authorization": f"Api-Key {other_key}"})
    assert post(api, bundle(FULL_PATIENT)).status_code == 200
    response = post(other_api, bundle(FULL_PATIENT))
    assert response.json()["patients"]["created"] == 1
    assert Patient.objects.filter(practice=practice).count() == 1
    assert Patient.objects.filter(practice=other).count() == 1


def test_signed_in_manager_may_import_but_not_a_user(member_client):
    assert post(member_client(Role.USER_PLUS), bundle(patient())).status_code == 403
    assert not Patient.objects.exists()
    client = member_client(Role.MANAGER)
    assert post(client, bundle(patient())).status_code == 200
    assert Patient.objects.get().practice_id == client.membership.practice_id


# Queries and the pure mapping --------------------------------------------------------------------


def _visit_bundle(size: int) -> dict:
    resources = []
    for n in range(size):
        resources += [
            patient(f"p{n}", identifier=[{"type": MR, "value": f"MRN-{n}"}], gender="male"),
            appointment(f"a{n}", patient_ref=f"Patient/p{n}"),
            encounter(f"e{n}", appointment=[{"reference": f"Appointment/a{n}"}]),
        ]
    return bundle(*resources)


def test_query_count_does_not_grow_with_the_bundle(api):
    # A first request records the key's use, which later requests skip.
    assert post(api, bundle()).status_code == 200
    with CaptureQueriesContext(connection) as small:
        assert post(api, _visit_bundle(2)).status_code == 200
    Patient.objects.all().delete()
    with CaptureQueriesContext(connection) as large:
        assert post(api, _visit_bundle(40)).status_code == 200
    assert len(large) == len(small)
    assert Appointment.objects.filter(status="completed").count() == 40


def test_bundle_map_is_pure_and_leaves_the_bundle_as_it_was():
    sent = bundle(FULL_PATIENT, appointment("a1"), encounter("e1", "arrived"))
    original = copy.deepcopy(sent)
    mapped = bundle_map(sent)
    assert sent == original
    assert mapped.errors == {}
    assert mapped.skipped_encounters == 1
    assert mapped.patients[0]["external_id"] == "MRN-1001"
    assert mapped.appointments[0]["patient_external_id"] == "MRN-1001"
