"""POST /api/v1/imports/patients.csv (DESIGN §4.1)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from patients.models import Patient
from tests.factories import PracticeFactory
from trackstat.models import Role

pytestmark = pytest.mark.django_db

URL = "/api/v1/imports/patients.csv"
GOOD = (
    "external_id,first_name,last_name,birth_date,phone,email,address_line1,city,state,"
    "postal_code,status,tags,sms_opt_out\n"
    "P1,Ann,Lee,1980-02-29,(312) 555-0142,ann@example.test,1 Main St,Chicago,IL,60601,"
    "Active,vip;newsletter,no\n"
    "P2,Bob,Ray,,312-555-0143,,,,,,Inactive,,\n"
)


@pytest.fixture
def practice():
    return PracticeFactory()


def upload(client: Client, text: str, name: str = "patients.csv"):
    return client.post(URL, {"file": SimpleUploadedFile(name, text.encode(), "text/csv")})


def test_multipart_upload_creates_patients(api):
    response = upload(api, GOOD)
    assert response.status_code == 200
    assert response.json() == {"rows": 2, "created": 2, "updated": 0, "unchanged": 0, "errors": []}
    ann = Patient.objects.get(external_id="P1")
    assert ann.phone == "+13125550142"
    assert ann.city == "Chicago"
    assert sorted(ann.tags.values_list("name", flat=True)) == ["newsletter", "vip"]
    assert Patient.objects.get(external_id="P2").status == "inactive"


def test_raw_text_csv_body(api):
    response = api.post(URL, GOOD, content_type="text/csv")
    assert response.json()["created"] == 2


def test_reimport_is_unchanged_and_empty_cells_keep_values(api):
    upload(api, GOOD)
    assert upload(api, GOOD).json()["unchanged"] == 2
    response = upload(api, "external_id,first_name,email\nP1,Annie,\n")
    assert response.json()["updated"] == 1
    ann = Patient.objects.get(external_id="P1")
    assert ann.first_name == "Annie"
    assert ann.email == "ann@example.test"  # an empty cell leaves the value


def test_bad_rows_are_reported_by_row_and_good_rows_saved(api):
    text = (
        "external_id,first_name,phone,birth_date\n"
        "P1,Ann,3125550142,1980-01-01\n"
        "P2,Bob,12,1980-01-01\n"
        ",NoId,,\n"
        "P4,Dee,,1980-13-45\n"
    )
    body = upload(api, text).json()
    assert body["rows"] == 4
    assert body["created"] == 1
    assert [(e["row"], list(e["errors"])) for e in body["errors"]] == [
        (3, ["phone"]),
        (4, ["external_id"]),
        (5, ["birth_date"]),
    ]
    assert list(Patient.objects.values_list("external_id", flat=True)) == ["P1"]


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ("", "file", "empty"),
        ("first_name,last_name\nAnn,Lee\n", "header", "external_id"),
        ("external_id,shoe_size\nP1,9\n", "header", "shoe_size"),
        ("external_id,first_name,first_name\nP1,a,b\n", "header", "twice"),
    ],
)
def test_unusable_files_are_400_naming_the_problem(api, text, field, message):
    response = upload(api, text)
    assert response.status_code == 400
    assert message in response.json()["errors"][field][0]
    assert not Patient.objects.exists()


def test_non_utf8_file_is_400(api):
    response = api.post(
        URL, {"file": SimpleUploadedFile("p.csv", "external_id\nJosé\n".encode("latin-1"))}
    )
    assert response.status_code == 400
    assert "UTF-8" in response.json()["errors"]["file"][0]


def test_missing_file_is_400(api):
    response = api.post(URL, {})
    assert response.status_code == 400
    assert "file" in response.json()["errors"]


def test_excel_bom_and_header_case_are_accepted(api):
    response = upload(api, "\ufeffExternal_ID,First_Name\nP1,Ann\n")
    assert response.json()["created"] == 1


def test_no_key_is_401_and_sessions_need_a_manager(member_client, practice):
    assert upload(Client(), GOOD).status_code == 401
    for role in (Role.USER, Role.USER_PLUS):
        assert upload(member_client(role, practice=practice), GOOD).status_code == 403
    assert not Patient.objects.exists()
    manager = member_client(Role.MANAGER, practice=practice)
    assert upload(manager, GOOD).json()["created"] == 2
