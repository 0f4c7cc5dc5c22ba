"""Every record field is validated to what storage can hold (issue 13, item 6): a field error
naming the field, never a server error, and nothing written. The same rules hold on every
path (PUT, bulk, CSV, FHIR), because they all go through ``patients.sync.records``."""

from __future__ import annotations

import json
from functools import partial

import hypothesis
import pytest
from django.test import Client
from hypothesis import HealthCheck
from hypothesis import strategies as st

from patients.models import Appointment, Case, Lookup, Patient, Tag
from patients.sync.records import APPOINTMENT_SPEC, CASE_SPEC, PATIENT_SPEC
from tests.factories import PracticeFactory

pytestmark = pytest.mark.django_db

JSON = "application/json"
NUL = "a\x00b"
SURROGATE = "a\ud800b"


@pytest.fixture
def practice():
    return PracticeFactory(time_zone="America/Chicago")


def put_raw(client: Client, url: str, body: dict):
    # json.dumps writes a lone surrogate as the escape "\ud800", as a client's JSON would.
    return client.put(url, json.dumps(body), content_type=JSON)


def field_errors(response) -> dict:
    assert response.status_code == 400, response.content
    return response.json()["errors"]


# Text fields of each record, with the model column that stores them (None: a lookup's name,
# or an id; their widths come from Lookup.name and Patient.external_id).
PATIENT_TEXT = {
    "first_name": Patient._meta.get_field("first_name").max_length,
    "last_name": Patient._meta.get_field("last_name").max_length,
    "primary_provider": Lookup._meta.get_field("name").max_length,
    "referral_source": Lookup._meta.get_field("name").max_length,
    "attorney": Lookup._meta.get_field("name").max_length,
    "care_package": Lookup._meta.get_field("name").max_length,
    "fee_schedule": Lookup._meta.get_field("name").max_length,
    "insurance_company": Lookup._meta.get_field("name").max_length,
}
ADDRESS_TEXT = {
    "line1": Patient._meta.get_field("address_line1").max_length,
    "line2": Patient._meta.get_field("address_line2").max_length,
    "city": Patient._meta.get_field("city").max_length,
    "state": Patient._meta.get_field("state").max_length,
    "postal_code": Patient._meta.get_field("postal_code").max_length,
}
CASE_TEXT = {
    "case_type": Lookup._meta.get_field("name").max_length,
    "attorney": Lookup._meta.get_field("name").max_length,
    "insurance_company": Lookup._meta.get_field("name").max_length,
    "status": Case._meta.get_field("status").max_length,
}
APPOINTMENT_TEXT = {
    "purpose": Lookup._meta.get_field("name").max_length,
    "provider": Lookup._meta.get_field("name").max_length,
}
NAME_LISTS = {
    ("patients", "tags"): Tag._meta.get_field("name").max_length,
    ("cases", "diagnoses"): Lookup._meta.get_field("name").max_length,
    ("appointments", "services"): Lookup._meta.get_field("name").max_length,
}


def test_every_text_field_of_every_record_is_covered_here():
    """A new record field must be added to the lists above (and so be tested below)."""
    assert set(PATIENT_SPEC) - set(PATIENT_TEXT) == {
        "external_id",
        "birth_date",
        "sex",
        "phone",
        "email",
        "address",
        "status",
        "first_visit_date",
        "paid_total",
        "tags",
        "sms_opt_out",
        "email_opt_out",
        "consent",
    }
    assert set(CASE_SPEC) - set(CASE_TEXT) == {"external_id", "patient_external_id", "diagnoses"}
    assert set(APPOINTMENT_SPEC) - set(APPOINTMENT_TEXT) == {
        "external_id",
        "patient_external_id",
        "case_external_id",
        "start",
        "duration_minutes",
        "status",
        "checked_in_at",
        "booked_at",
        "services",
    }


@pytest.fixture
def owner(api):
    assert put_raw(api, "/api/v1/patients/OWNER", {}).status_code == 201
    return "OWNER"


def _record_url(kind: str, owner: str) -> tuple[str, dict]:
    """A new record's URL and the fields it needs besides the one under test."""
    return {
        "patients": ("/api/v1/patients/NEW", {}),
        "cases": ("/api/v1/cases/NEW", {"patient_external_id": owner}),
        "appointments": (
            "/api/v1/appointments/NEW",
            {"patient_external_id": owner, "start": "2026-03-09T09:30:00-06:00"},
        ),
    }[kind]


def _stored(kind: str) -> bool:
    model = {"patients": Patient, "cases": Case, "appointments": Appointment}[kind]
    return model.objects.filter(external_id="NEW").exists()


TEXT_CASES = [
    *[("patients", name, width) for name, width in PATIENT_TEXT.items()],
    *[("cases", name, width) for name, width in CASE_TEXT.items()],
    *[("appointments", name, width) for name, width in APPOINTMENT_TEXT.items()],
]


@pytest.mark.parametrize(("kind", "name", "width"), TEXT_CASES)
def test_text_as_long_as_its_column_is_stored_one_more_character_is_refused(
    api, owner, kind, name, width
):
    url, base = _record_url(kind, owner)
    errors = field_errors(put_raw(api, url, {**base, name: "x" * (width + 1)}))
    assert list(errors) == [name]
    assert str(width) in errors[name][0]
    assert not _stored(kind)
    response = put_raw(api, url, {**base, name: "x" * width})
    assert response.status_code == 201, response.content
    assert response.json()[name] == "x" * width


@pytest.mark.parametrize(("kind", "name", "width"), TEXT_CASES)
@pytest.mark.parametrize("nasty", [NUL, SURROGATE], ids=["nul", "surrogate"])
def test_nul_and_lone_surrogates_are_refused_in_every_text_field(
    api, owner, kind, name, width, nasty
):
    url, base = _record_url(kind, owner)
    errors = field_errors(put_raw(api, url, {**base, name: nasty}))
    assert list(errors) == [name]
    assert not _stored(kind)
    assert not Lookup.objects.exists()


@pytest.mark.parametrize("name", ADDRESS_TEXT)
@pytest.mark.parametrize("nasty", ["too long", NUL, SURROGATE])
def test_address_parts_are_checked_like_any_text(api, name, nasty):
    value = "x" * (ADDRESS_TEXT[name] + 1) if nasty == "too long" else nasty
    errors = field_errors(put_raw(api, "/api/v1/patients/NEW", {"address": {name: value}}))
    assert list(errors) == ["address"]
    assert list(errors["address"]) == [name]
    assert not Patient.objects.exists()


@pytest.mark.parametrize(("kind", "name"), list(NAME_LISTS))
@pytest.mark.parametrize("nasty", ["too long", NUL, SURROGATE])
def test_name_lists_hold_names_their_table_can_store(api, owner, kind, name, nasty):
    """A 150-character tag passed validation and then broke the write (Tag.name is 100)."""
    width = NAME_LISTS[(kind, name)]
    url, base = _record_url(kind, owner)
    value = "x" * (width + 1) if nasty == "too long" else nasty
    errors = field_errors(put_raw(api, url, {**base, name: ["fine", value]}))
    assert list(errors) == [name]
    assert not _stored(kind)
    response = put_raw(api, url, {**base, name: ["x" * width]})
    assert response.status_code == 201, response.content


def test_a_150_character_tag_is_a_field_error(api):
    errors = field_errors(put_raw(api, "/api/v1/patients/P1", {"tags": ["t" * 150]}))
    assert errors == {"tags": ["Ensure this field has no more than 100 characters."]}
    assert not Patient.objects.exists()
    assert not Tag.objects.exists()


@pytest.mark.parametrize("field", ["external_id", "patient_external_id"])
@pytest.mark.parametrize("nasty", ["x" * 65, NUL, SURROGATE, "   "])
def test_external_ids_in_bodies(api, owner, field, nasty):
    body = {"patient_external_id": owner, "start": "2026-03-09T09:30:00-06:00", field: nasty}
    response = api.post("/api/v1/appointments:bulk", json.dumps({"appointments": [body]}), JSON)
    assert response.status_code == 200, response.content
    [error] = response.json()["errors"]
    assert field in error["errors"]
    assert not Appointment.objects.exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("9999-12-31", "Must be between 1900-01-01 and "),
        ("1899-12-31", "Must be between 1900-01-01 and "),
        ("2020-W01-1", "Date has wrong format. Use YYYY-MM-DD."),
        ("2020-001", "Date has wrong format. Use YYYY-MM-DD."),
        ("20200101", "Date has wrong format. Use YYYY-MM-DD."),
        ("2020-02-30", "Date has wrong format. Use YYYY-MM-DD."),
        (
            "\uff12\uff10\uff12\uff10-\uff10\uff11-\uff10\uff11",
            "Date has wrong format. Use YYYY-MM-DD.",
        ),
        (20200101, "Date has wrong format. Use YYYY-MM-DD."),
    ],
)
@pytest.mark.parametrize("field", ["first_visit_date", "birth_date"])
def test_dates_are_calendar_dates_in_range(api, field, value, message):
    errors = field_errors(put_raw(api, "/api/v1/patients/P1", {field: value}))
    assert list(errors) == [field]
    assert errors[field][0].startswith(message)
    assert not Patient.objects.exists()


def test_dates_at_the_ends_of_the_range_are_stored(api):
    response = put_raw(
        api, "/api/v1/patients/P1", {"birth_date": "1900-01-01", "first_visit_date": "2100-12-31"}
    )
    assert response.status_code == 201, response.content
    assert (response.json()["birth_date"], response.json()["first_visit_date"]) == (
        "1900-01-01",
        "2100-12-31",
    )


@pytest.mark.parametrize(
    "value",
    [
        "9999-12-31T23:59:59-12:00",  # OverflowError converting to UTC
        "0001-01-01T00:00:00+14:00",
        "2026-03-09T09:30:00+23:59",  # DataError: PostgreSQL's offsets end at ±15:59
        "2026-03-09T09:30:00-14:01",
        "2026-03-09T09:30:00",  # naive
        "2026-W11-1T09:30:00-05:00",
        "20260309T093000-0500",
        "2101-01-01T00:00:00+00:00",
        "1899-12-31T23:59:59+00:00",
        1773063000,
    ],
)
@pytest.mark.parametrize("field", ["start", "checked_in_at", "booked_at"])
def test_instants_have_an_offset_within_14_hours_and_sane_years(api, owner, field, value):
    body = {"patient_external_id": owner, "start": "2026-03-09T09:30:00-06:00", field: value}
    errors = field_errors(put_raw(api, "/api/v1/appointments/A1", body))
    assert list(errors) == [field]
    assert not Appointment.objects.exists()


@pytest.mark.parametrize("offset", ["-12:00", "+14:00", "Z", "+05:45", "-0330"])
def test_real_world_offsets_are_stored(api, owner, offset):
    body = {"patient_external_id": owner, "start": f"2026-03-09T09:30:00{offset}"}
    assert put_raw(api, "/api/v1/appointments/A1", body).status_code == 201


@pytest.mark.parametrize("value", [15.0, 15.5, "15.0", True, "1e3", None, [15]])
def test_duration_is_a_whole_number_not_a_float(api, owner, value):
    body = {
        "patient_external_id": owner,
        "start": "2026-03-09T09:30:00-06:00",
        "duration_minutes": value,
    }
    errors = field_errors(put_raw(api, "/api/v1/appointments/A1", body))
    assert list(errors) == ["duration_minutes"]


def test_duration_from_csv_digits_is_accepted(api, owner):
    body = {
        "patient_external_id": owner,
        "start": "2026-03-09T09:30:00-06:00",
        "duration_minutes": "45",
    }
    response = put_raw(api, "/api/v1/appointments/A1", body)
    assert response.status_code == 201
    assert response.json()["duration_minutes"] == 45


def test_a_bad_external_id_is_not_echoed_in_the_bulk_answer(api):
    body = {"patients": [{"external_id": SURROGATE}, {"external_id": "GOOD"}]}
    response = api.post("/api/v1/patients:bulk", json.dumps(body), JSON)
    assert response.status_code == 200, response.content
    assert response.json()["created"] == 1
    assert response.json()["errors"] == [
        {
            "index": 0,
            "external_id": None,
            "errors": {
                "external_id": [
                    "Contains a character that is not valid Unicode (a lone surrogate)."
                ]
            },
        }
    ]


# --- CSV goes through the same rules (FHIR: tests/patients/test_fhir.py) ---------------------


def test_csv_cells_are_checked_like_api_fields(api):
    csv = (
        "external_id,first_name,tags,first_visit_date\n"
        f"P1,{'x' * 101},,\n"
        f"P2,Bo,{'t' * 150},\n"
        "P3,Cy,,2020-W01-1\n"
        "P4,Di,,2020-01-01\n"
    )
    response = api.post("/api/v1/imports/patients.csv", csv, content_type="text/csv")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["created"] == 1
    assert [(e["row"], list(e["errors"])) for e in body["errors"]] == [
        (2, ["first_name"]),
        (3, ["tags"]),
        (4, ["first_visit_date"]),
    ]
    assert list(Patient.objects.values_list("external_id", flat=True)) == ["P4"]


# --- property: whatever text a client sends, the answer is a field error or it is stored ----


@hypothesis.settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@hypothesis.given(
    name=st.sampled_from(sorted(PATIENT_TEXT)),
    value=st.one_of(
        st.text(alphabet=st.characters(exclude_categories=())),
        st.builds(
            lambda before, nasty, after: before + nasty + after,
            st.text(max_size=20),
            st.sampled_from(["\x00", "\ud800", "\udfff", "\udc00\ud800"]),
            st.text(max_size=20),
        ),
        st.integers(min_value=95, max_value=210).map(lambda n: "x" * n),
        st.text(alphabet=" \t\n\u00a0\u3000", max_size=3).map(lambda pad: f"{pad}Ann{pad}"),
    ),
)
def test_any_text_is_stored_as_sent_or_refused_naming_the_field(api, name, value):
    body = {"patients": [{"external_id": "PROP", name: value}, {"external_id": "SAFE"}]}
    response = api.post("/api/v1/patients:bulk", json.dumps(body), JSON)
    assert response.status_code == 200, response.content
    result = response.json()
    if result["errors"]:
        [error] = result["errors"]
        assert (error["index"], list(error["errors"])) == (0, [name])
    else:
        stored = api.get("/api/v1/patients/PROP").json()[name]
        assert stored == value.strip() or (stored is None and not value.strip())
    assert Patient.objects.filter(external_id="SAFE").exists()


# --- staff services hold tag names to the same column ---------------------------------------


@pytest.mark.parametrize("service", ["one", "bulk"])
def test_staff_tagging_refuses_a_name_longer_than_a_tag_can_be(practice, service):
    from django.core.exceptions import ValidationError

    from patients.services import patient_tag_add, patients_tag_bulk
    from tests.factories import PatientFactory

    patient = PatientFactory(practice=practice, external_id="P1")
    long_name = "t" * 101
    if service == "one":
        tag = partial(patient_tag_add, patient=patient)
    else:
        tag = partial(patients_tag_bulk, external_ids=["P1"])
    with pytest.raises(ValidationError) as error:
        tag(practice=practice, name=long_name, actor=None)
    assert "100" in str(error.value)
    assert not Tag.objects.exists()
