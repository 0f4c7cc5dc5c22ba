"""The Patients pages: list and search, detail with tags and opt-outs, bulk tagging, CSV import."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from patients.models import OptOutSource, Patient, PatientStatus, PatientTag, Tag
from patients.sync.appointments import appointments_upsert
from patients.sync.cases import cases_upsert
from patients.sync.patients import patients_upsert
from patients.sync.records import (
    AppointmentRecordSerializer,
    CaseRecordSerializer,
    PatientRecordSerializer,
    validate_records,
)
from tests.factories import PatientFactory, PracticeFactory
from trackstat.models import AuditEvent, Role

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
UTC = dt.UTC


@pytest.fixture
def user_client(member_client):
    return member_client(Role.USER)


@pytest.fixture
def manager_client(member_client):
    return member_client(Role.MANAGER)


def _sync(practice, *, patients=(), cases=(), appointments=()):
    """Write EMR records through the same validation and services as the REST API."""
    for serializer, upsert, items in (
        (PatientRecordSerializer, patients_upsert, patients),
        (CaseRecordSerializer, cases_upsert, cases),
        (AppointmentRecordSerializer, appointments_upsert, appointments),
    ):
        if not items:
            continue
        records, errors = validate_records(serializer, list(items))
        assert errors == []
        result = upsert(practice=practice, records=records)
        assert result.errors == []


def _tag(patient: Patient, *names: str) -> None:
    for name in names:
        tag, _ = Tag.objects.get_or_create(practice=patient.practice, name=name)
        PatientTag.objects.create(practice=patient.practice, patient=patient, tag=tag)


def _list(client, **params):
    return client.get(reverse("patients:list"), params)


# --- list ------------------------------------------------------------------------------------


def test_list_shows_the_practice_patients_with_their_columns(user_client):
    practice = user_client.membership.practice
    _sync(
        practice,
        patients=[
            {
                "external_id": "EMR-1",
                "first_name": "Ada",
                "last_name": "Lovelace",
                "phone": "(312) 555-0101",
                "email": "ada@example.test",
                "tags": ["VIP"],
            }
        ],
        appointments=[
            {
                "external_id": "A1",
                "patient_external_id": "EMR-1",
                "start": "2026-03-02T15:00:00+00:00",
                "status": "completed",
            }
        ],
    )
    PatientFactory(practice=PracticeFactory(), first_name="Other", last_name="Practice")

    response = _list(user_client)

    assert response.status_code == 200
    text = response.text
    assert "Lovelace, Ada" in text
    assert "EMR-1" in text
    assert "+13125550101" in text
    assert "ada@example.test" in text
    assert "Active" in text
    assert "2026-03-02" in text
    assert '<span class="tag">VIP</span>' in text
    assert reverse("patients:detail", args=[Patient.objects.get(external_id="EMR-1").pk]) in text
    assert "Practice, Other" not in text
    assert "1 patient" in text


@pytest.mark.parametrize(
    "query",
    ["lovelace", "ADA", "(312) 555-0101", "555-0101", "EMR-1", "emr-1", "ada@example"],
)
def test_list_search_by_name_phone_email_and_external_id(user_client, query):
    practice = user_client.membership.practice
    PatientFactory(
        practice=practice,
        external_id="EMR-1",
        first_name="Ada",
        last_name="Lovelace",
        phone="+13125550101",
        email="ada@example.test",
    )
    PatientFactory(
        practice=practice,
        external_id="EMR-2",
        first_name="Grace",
        last_name="Hopper",
        phone="+17735550199",
        email="grace@example.test",
    )

    response = _list(user_client, q=query)

    assert response.status_code == 200
    assert "Lovelace, Ada" in response.text
    assert "Hopper" not in response.text


def test_list_filters_by_tag_and_status(user_client):
    practice = user_client.membership.practice
    active = PatientFactory(practice=practice, last_name="Active", status=PatientStatus.ACTIVE)
    inactive = PatientFactory(
        practice=practice, last_name="Inactive", status=PatientStatus.INACTIVE
    )
    deceased = PatientFactory(
        practice=practice, last_name="Deceased", status=PatientStatus.DECEASED
    )
    discharged = PatientFactory(
        practice=practice, last_name="Discharged", status=PatientStatus.DISCHARGED
    )
    _tag(active, "moved")
    _tag(discharged, "moved")
    _tag(inactive, "VIP")

    def names(**params) -> set[str]:
        response = _list(user_client, **params)
        assert response.status_code == 200
        shown = {p.last_name for p in (active, inactive, deceased, discharged)}
        return {name for name in shown if f"{name}, Pat" in response.text}

    assert names(tag="moved") == {"Active", "Discharged"}
    assert names(status="active") == {"Active"}
    assert names(status="inactive_any") == {"Inactive", "Deceased", "Discharged"}
    assert names(status="deceased") == {"Deceased"}
    assert names(tag="moved", status="inactive_any") == {"Discharged"}
    assert names() == {"Active", "Inactive", "Deceased", "Discharged"}

    page = _list(user_client).text
    assert '<option value="moved">moved</option>' in page
    assert '<option value="VIP">VIP</option>' in page


def test_list_tag_choices_are_only_the_practice_tags(user_client):
    other = PatientFactory(practice=PracticeFactory())
    _tag(other, "elsewhere")

    page = _list(user_client)
    assert "elsewhere" not in page.text
    response = _list(user_client, tag="elsewhere")
    assert response.status_code == 400
    assert "Tag: Select a valid choice." in response.text


def test_list_rejects_an_unknown_status_naming_the_field(user_client):
    PatientFactory(practice=user_client.membership.practice, last_name="Shown")

    response = _list(user_client, status="sleeping")

    assert response.status_code == 400
    assert "Status: Select a valid choice." in response.text
    assert "Shown, Pat" not in response.text


def test_list_paginates_by_50_and_page_links_keep_the_filters(user_client):
    practice = user_client.membership.practice
    for n in range(55):
        PatientFactory(practice=practice, last_name=f"Smith{n:02d}", status=PatientStatus.ACTIVE)
    PatientFactory(practice=practice, last_name="Smith99", status=PatientStatus.INACTIVE)

    first = _list(user_client, q="smith", status="active")
    assert first.status_code == 200
    assert first.text.count("Smith") >= 50
    assert "Smith49, Pat" in first.text
    assert "Smith50, Pat" not in first.text
    assert "55 patients" in first.text
    assert "page 1 of 2" in first.text
    assert 'href="/patients/?q=smith&amp;status=active&amp;page=2"' in first.text

    second = _list(user_client, q="smith", status="active", page=2)
    assert "Smith50, Pat" in second.text
    assert "Smith54, Pat" in second.text
    assert "Smith49, Pat" not in second.text
    assert "Smith99" not in second.text
    assert 'href="/patients/?q=smith&amp;status=active&amp;page=1"' in second.text


def test_list_with_htmx_renders_only_the_results(user_client):
    PatientFactory(practice=user_client.membership.practice, last_name="Lovelace")

    response = user_client.get(reverse("patients:list"), {"q": "love"}, headers=HTMX)

    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section id="results"')
    assert "Lovelace, Pat" in response.text
    assert "<html" not in response.text
    assert "HX-Request" in response.headers["Vary"]

    full = _list(user_client, q="love")
    assert "<html" in full.text
    assert 'hx-get="/patients/"' in full.text
    assert 'value="love"' in full.text


def test_list_query_count_does_not_grow_with_the_patients_shown(
    user_client, django_assert_max_num_queries
):
    practice = user_client.membership.practice

    def add_patients(count: int) -> None:
        for _ in range(count):
            patient = PatientFactory(practice=practice)
            _tag(patient, "VIP", "moved")

    add_patients(3)
    with CaptureQueriesContext(connection) as few:
        assert _list(user_client).status_code == 200
    add_patients(27)
    with django_assert_max_num_queries(len(few)):
        response = _list(user_client)
    assert response.status_code == 200
    assert response.text.count('<span class="tag">VIP</span>') == 30
    assert len(few) <= 10


# --- detail ----------------------------------------------------------------------------------


@pytest.fixture
def synced_patient(practice):
    """A patient with lookups, a case and appointments, synced as the EMR would send them."""
    _sync(
        practice,
        patients=[
            {
                "external_id": "P1",
                "first_name": "Ada",
                "last_name": "Lovelace",
                "birth_date": "1980-12-10",
                "sex": "F",
                "phone": "312-555-0101",
                "email": "ada@example.test",
                "address": {
                    "line1": "1 Main St",
                    "city": "Chicago",
                    "state": "IL",
                    "postal_code": "60601",
                },
                "status": "active",
                "first_visit_date": "2025-01-15",
                "primary_provider": "Dr. Bones",
                "referral_source": "Google",
                "insurance_company": "Blue Shield",
                "attorney": "Saul Goodman",
                "care_package": "Wellness 12",
                "fee_schedule": "Standard",
                "paid_total": "1234.56",
                "tags": ["VIP"],
            }
        ],
        cases=[
            {
                "external_id": "C1",
                "patient_external_id": "P1",
                "case_type": "Personal Injury",
                "diagnoses": ["S13.4XXA", "M54.2"],
                "status": "open",
            }
        ],
        appointments=[
            {
                "external_id": "A1",
                "patient_external_id": "P1",
                "case_external_id": "C1",
                "start": "2026-03-02T15:00:00+00:00",
                "status": "completed",
                "purpose": "Adjustment",
                "provider": "Dr. Bones",
                "services": ["98940"],
            },
            {
                "external_id": "A2",
                "patient_external_id": "P1",
                "case_external_id": "C1",
                "start": "2026-03-09T14:30:00+00:00",
                "status": "scheduled",
                "purpose": "Re-exam",
                "provider": "Dr. Spine",
            },
        ],
    )
    return Patient.objects.get(practice=practice, external_id="P1")


def test_detail_shows_demographics_visits_cases_and_appointments(member_client, synced_patient):
    client = member_client(Role.USER, practice=synced_patient.practice)

    response = client.get(reverse("patients:detail", args=[synced_patient.pk]))

    assert response.status_code == 200
    text = response.text
    for expected in [
        "Ada Lovelace",
        "1980-12-10",
        "Female",
        "+13125550101",
        "ada@example.test",
        "1 Main St",
        "Chicago, IL 60601",
        "2025-01-15",
        "Dr. Bones",
        "Google",
        "Blue Shield",
        "Saul Goodman",
        "Wellness 12",
        "Standard",
        "Personal Injury",
        "S13.4XXA",
        "M54.2",
        "Adjustment",
        "98940",
        "VIP",
        "Message history",
    ]:
        assert expected in text, expected
    # Visit facts: one completed visit; the later scheduled one is the last scheduled.
    assert "<dt>Visit count</dt><dd>1</dd>" in text
    assert "<dt>Last visit</dt><dd>2026-03-02</dd>" in text
    assert "<dt>Last scheduled</dt><dd>2026-03-09</dd>" in text
    # Appointment times in the practice's zone (New York; DST began 2026-03-08), newest first.
    later = text.index("Mon 2026-03-09 10:30 AM EDT")
    earlier = text.index("Mon 2026-03-02 10:00 AM EST")
    assert later < earlier


def test_detail_holds_a_place_for_each_panel_the_role_may_see(member_client, synced_patient):
    """The apps built on patients add panels (``patients.panels``), each loaded by htmx from
    its own view when it scrolls into view, with a plain link to that view's page."""
    url = reverse("patients:detail", args=[synced_patient.pk])
    why = reverse("campaigns:patient_why", args=[synced_patient.pk])
    history = reverse("messaging:patient_messages", args=[synced_patient.pk])

    text = member_client(Role.USER_PLUS, practice=synced_patient.practice).get(url).text

    for panel_url in (why, history):
        assert f'hx-get="{panel_url}" hx-trigger="revealed" hx-swap="outerHTML"' in text
        assert f'<a href="{panel_url}">' in text
    assert text.index(why) < text.index(history)  # "why or why not?" first, as before

    # Campaign features are User Plus and above (DESIGN §3): a User sees the history only.
    text = member_client(Role.USER, practice=synced_patient.practice).get(url).text
    assert history in text
    assert why not in text


def test_paid_total_is_shown_to_managers_only(member_client, synced_patient):
    url = reverse("patients:detail", args=[synced_patient.pk])
    for role in (Role.MANAGER, Role.ADMINISTRATOR):
        text = member_client(role, practice=synced_patient.practice).get(url).text
        assert "Paid total" in text
        assert "$1,234.56" in text
    for role in (Role.USER, Role.USER_PLUS):
        text = member_client(role, practice=synced_patient.practice).get(url).text
        assert "Paid total" not in text
        assert "1,234.56" not in text
        assert "1234.56" not in text


def _foreign_urls(patient: Patient, tag: Tag) -> list[tuple[str, str, dict]]:
    return [
        ("get", reverse("patients:detail", args=[patient.pk]), {}),
        ("post", reverse("patients:tag_add", args=[patient.pk]), {"name": "x"}),
        ("post", reverse("patients:tag_remove", args=[patient.pk, tag.pk]), {}),
        (
            "post",
            reverse("patients:opt_out", args=[patient.pk]),
            {"channel": "sms", "opted_out": "true"},
        ),
    ]


def test_another_practice_patient_is_404_everywhere(user_client):
    foreign = PatientFactory(practice=PracticeFactory())
    _tag(foreign, "theirs")
    tag = Tag.objects.get(name="theirs")

    for method, url, data in _foreign_urls(foreign, tag):
        assert getattr(user_client, method)(url, data).status_code == 404, url
        assert getattr(user_client, method)(url, data, headers=HTMX).status_code == 404, url

    foreign.refresh_from_db()
    assert not foreign.sms_opt_out
    assert list(foreign.tags.values_list("name", flat=True)) == ["theirs"]
    assert not Tag.objects.filter(name="x").exists()


def test_removing_another_practice_tag_is_404(user_client):
    patient = PatientFactory(practice=user_client.membership.practice)
    foreign_tag = Tag.objects.create(practice=PracticeFactory(), name="theirs")

    url = reverse("patients:tag_remove", args=[patient.pk, foreign_tag.pk])
    assert user_client.post(url).status_code == 404


# --- tags ------------------------------------------------------------------------------------


def test_add_tag_with_a_form_post_redirects_back(user_client):
    patient = PatientFactory(practice=user_client.membership.practice)
    Tag.objects.create(practice=patient.practice, name="not qualified")  # a User uses tags

    response = user_client.post(
        reverse("patients:tag_add", args=[patient.pk]), {"name": "  not qualified "}
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("patients:detail", args=[patient.pk]) + "#tags"
    assert list(patient.tags.values_list("name", flat=True)) == ["not qualified"]
    page = user_client.get(response["Location"])
    assert "not qualified" in page.text


def test_add_tag_with_htmx_returns_only_the_tags_partial(user_client):
    patient = PatientFactory(practice=user_client.membership.practice)
    _tag(patient, "VIP")
    Tag.objects.create(practice=patient.practice, name="moved")

    response = user_client.post(
        reverse("patients:tag_add", args=[patient.pk]), {"name": "moved"}, headers=HTMX
    )

    assert response.status_code == 200
    text = response.text
    assert text.lstrip().startswith('<section class="panel" id="tags"')
    assert "<html" not in text
    assert "moved" in text
    assert "VIP" in text
    assert "Opt-outs" not in text
    assert set(patient.tags.values_list("name", flat=True)) == {"VIP", "moved"}
    # The tag is not repeated when added twice.
    user_client.post(
        reverse("patients:tag_add", args=[patient.pk]), {"name": "moved"}, headers=HTMX
    )
    assert patient.tags.count() == 2


def test_add_tag_rejects_an_empty_name_naming_the_field(user_client):
    patient = PatientFactory(practice=user_client.membership.practice)
    url = reverse("patients:tag_add", args=[patient.pk])

    response = user_client.post(url, {"name": "   "}, headers=HTMX)
    assert response.status_code == 400
    assert "Tag name: This field is required." in response.text
    assert "<html" not in response.text

    response = user_client.post(url, {"name": "x" * 101})
    assert response.status_code == 400
    assert "Tag name: Ensure this value has at most 100 characters" in response.text
    assert "<html" in response.text
    assert patient.tags.count() == 0


def test_remove_tag_with_a_form_post_and_with_htmx(user_client):
    patient = PatientFactory(practice=user_client.membership.practice)
    _tag(patient, "VIP", "moved")
    vip, moved = Tag.objects.get(name="VIP"), Tag.objects.get(name="moved")

    response = user_client.post(reverse("patients:tag_remove", args=[patient.pk, vip.pk]))
    assert response.status_code == 302
    assert response["Location"].endswith("#tags")
    assert list(patient.tags.values_list("name", flat=True)) == ["moved"]

    response = user_client.post(
        reverse("patients:tag_remove", args=[patient.pk, moved.pk]), headers=HTMX
    )
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section class="panel" id="tags"')
    assert "No tags yet." in response.text
    assert patient.tags.count() == 0
    # The tag stays in the practice's list for other patients.
    assert Tag.objects.filter(pk=moved.pk).exists()


# --- opt-outs --------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["sms", "email"])
def test_opt_out_switch_sets_the_fields_audits_and_turns_back_on(user_client, channel):
    practice = user_client.membership.practice
    patient = PatientFactory(practice=practice)
    url = reverse("patients:opt_out", args=[patient.pk])

    response = user_client.post(url, {"channel": channel, "opted_out": "true"})

    assert response.status_code == 302
    assert response["Location"].endswith("#opt-outs")
    patient.refresh_from_db()
    assert getattr(patient, f"{channel}_opt_out") is True
    assert getattr(patient, f"{channel}_opt_out_at") is not None
    assert getattr(patient, f"{channel}_opt_out_source") == OptOutSource.STAFF
    other = "email" if channel == "sms" else "sms"
    assert getattr(patient, f"{other}_opt_out") is False
    event = AuditEvent.objects.get(practice=practice, action=f"patient.{channel}_opt_out")
    assert event.actor == user_client.membership.user
    assert event.target_id == str(patient.pk)
    assert event.before == {f"{channel}_opt_out": False}
    page = user_client.get(reverse("patients:detail", args=[patient.pk])).text
    assert "source: Staff" in page

    response = user_client.post(url, {"channel": channel, "opted_out": "false"}, headers=HTMX)

    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section class="panel" id="opt-outs"')
    assert "<html" not in response.text
    patient.refresh_from_db()
    assert getattr(patient, f"{channel}_opt_out") is False
    assert getattr(patient, f"{channel}_opt_out_at") is None
    assert getattr(patient, f"{channel}_opt_out_source") == ""
    assert AuditEvent.objects.filter(
        practice=practice, action=f"patient.{channel}_opt_in", target_id=str(patient.pk)
    ).exists()


def test_opt_out_partial_shows_the_switch_state(user_client):
    patient = PatientFactory(practice=user_client.membership.practice)
    url = reverse("patients:opt_out", args=[patient.pk])

    text = user_client.post(url, {"channel": "sms", "opted_out": "1"}, headers=HTMX).text

    assert 'aria-checked="true" id="switch-sms"' in text
    assert 'aria-checked="false" id="switch-email"' in text
    # The sms switch now offers turning texts back on.
    sms_form = text[: text.index('id="switch-sms"')]
    assert 'name="opted_out" value="false"' in sms_form[sms_form.rindex("<form") :]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"channel": "fax", "opted_out": "true"}, "channel"),
        ({"channel": "sms", "opted_out": "maybe"}, "opted_out"),
        ({"channel": "sms"}, "opted_out"),
    ],
)
def test_opt_out_rejects_bad_input_naming_the_field(user_client, data, field):
    patient = PatientFactory(practice=user_client.membership.practice)
    url = reverse("patients:opt_out", args=[patient.pk])

    response = user_client.post(url, data, headers=HTMX)
    assert response.status_code == 400
    assert f"<li>{field}: " in response.text

    response = user_client.post(url, data)
    assert response.status_code == 400
    assert f"<li>{field}: " in response.text
    patient.refresh_from_db()
    assert not patient.sms_opt_out
    assert not AuditEvent.objects.exists()


# --- bulk tagging ----------------------------------------------------------------------------


def test_bulk_tag_a_pasted_list_reports_unknown_ids(manager_client):
    practice = manager_client.membership.practice
    p1 = PatientFactory(practice=practice, external_id="P1")
    p2 = PatientFactory(practice=practice, external_id="P2")
    p3 = PatientFactory(practice=practice, external_id="P3")
    _tag(p3, "no marketing")
    foreign = PatientFactory(practice=PracticeFactory(), external_id="P4")

    response = manager_client.post(
        reverse("patients:bulk_tag"),
        {"name": "no marketing", "external_ids": "P1\nP2, P3  NOPE;P4\n\nP1"},
        follow=True,
    )

    assert response.status_code == 200
    text = response.text
    assert '<dd id="result-tagged">2</dd>' in text
    assert '<dd id="result-already">1</dd>' in text
    assert '<dd id="result-unknown-count">2</dd>' in text
    assert "<li><code>NOPE</code></li>" in text
    assert "<li><code>P4</code></li>" in text
    for patient in (p1, p2, p3):
        assert list(patient.tags.values_list("name", flat=True)) == ["no marketing"]
    assert foreign.tags.count() == 0


def test_bulk_tag_from_a_csv_first_column(manager_client):
    practice = manager_client.membership.practice
    PatientFactory(practice=practice, external_id="P1")
    PatientFactory(practice=practice, external_id="P2")
    upload = SimpleUploadedFile("ids.csv", b"P1,Ada\r\nP2,Grace\r\nZZ9,Nobody\r\n", "text/csv")

    response = manager_client.post(
        reverse("patients:bulk_tag"),
        {"name": "moved", "external_ids": "", "file": upload},
        follow=True,
    )

    assert response.status_code == 200
    assert '<dd id="result-tagged">2</dd>' in response.text
    assert "<li><code>ZZ9</code></li>" in response.text
    assert Tag.objects.get(practice=practice, name="moved").patients.count() == 2


def test_bulk_tag_from_a_csv_external_id_column(manager_client):
    practice = manager_client.membership.practice
    PatientFactory(practice=practice, external_id="P1")
    content = "\ufeffName,External_ID\nAda,P1\nNobody,ZZ9\n".encode()
    upload = SimpleUploadedFile("ids.csv", content, "text/csv")

    response = manager_client.post(
        reverse("patients:bulk_tag"), {"name": "VIP", "file": upload}, follow=True
    )

    assert response.status_code == 200
    assert '<dd id="result-tagged">1</dd>' in response.text
    assert '<dd id="result-unknown-count">1</dd>' in response.text
    assert "<li><code>ZZ9</code></li>" in response.text
    assert "<li><code>Ada</code></li>" not in response.text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "VIP", "external_ids": " \n , "}, "External ids: Paste at least one"),
        ({"name": "", "external_ids": "P1"}, "Tag name: This field is required."),
        ({"name": "x" * 101, "external_ids": "P1"}, "Tag name: Ensure this value"),
    ],
)
def test_bulk_tag_rejects_bad_input_naming_the_field(manager_client, data, message):
    response = manager_client.post(reverse("patients:bulk_tag"), data)

    assert response.status_code == 400
    assert message in response.text
    assert not Tag.objects.exists()


def test_bulk_tag_rejects_a_file_that_is_not_utf8(manager_client):
    upload = SimpleUploadedFile("ids.csv", "P1,Zoë\n".encode("utf-16"), "text/csv")

    response = manager_client.post(reverse("patients:bulk_tag"), {"name": "VIP", "file": upload})

    assert response.status_code == 400
    assert "Or a CSV file: The file is not UTF-8 text" in response.text


def test_bulk_tag_page_renders_for_managers(member_client):
    for role in (Role.MANAGER, Role.ADMINISTRATOR):
        response = member_client(role).get(reverse("patients:bulk_tag"))
        assert response.status_code == 200
        assert 'enctype="multipart/form-data"' in response.text


# --- CSV import ------------------------------------------------------------------------------


def test_import_page_imports_and_reports_row_errors(manager_client):
    practice = manager_client.membership.practice
    PatientFactory(practice=practice, external_id="P9", first_name="Old")
    content = (
        "external_id,first_name,last_name,phone,birth_date,postal_code\n"
        "P10,Ann,Able,312-555-0110,1980-01-02,60601\n"
        "P11,Bob,Baker,not-a-phone,1980-01-02,60601\n"
        "P12,Cy,Cole,,13/45/2000,\n"
        "P9,New,,,,\n"
        f"P13,Di,Dee,,,{'9' * 25}\n"
    ).encode()
    upload = SimpleUploadedFile("patients.csv", content, "text/csv")

    response = manager_client.post(reverse("patients:import"), {"file": upload}, follow=True)

    assert response.status_code == 200
    text = response.text
    assert '<dd id="result-rows">5</dd>' in text
    assert '<dd id="result-created">1</dd>' in text
    assert '<dd id="result-updated">1</dd>' in text
    assert '<dd id="result-errors">3</dd>' in text
    assert "<tr><td>3</td><td><code>P11</code></td><td><code>phone</code></td>" in text
    assert "<tr><td>4</td><td><code>P12</code></td><td><code>birth_date</code></td>" in text
    assert "<tr><td>6</td><td><code>P13</code></td><td><code>postal_code</code></td>" in text
    assert Patient.objects.get(practice=practice, external_id="P10").phone == "+13125550110"
    assert Patient.objects.get(practice=practice, external_id="P9").first_name == "New"
    assert not Patient.objects.filter(external_id__in=["P11", "P12", "P13"]).exists()


def test_import_page_shows_a_file_format_error_next_to_the_file_field(manager_client):
    upload = SimpleUploadedFile("patients.csv", b"external_id,shoe_size\nP1,9\n", "text/csv")

    response = manager_client.post(reverse("patients:import"), {"file": upload})

    assert response.status_code == 400
    assert '<p class="error">Patients CSV: Unknown column(s): shoe_size.' in response.text
    assert not Patient.objects.exists()


def test_import_page_requires_a_file(manager_client):
    response = manager_client.post(reverse("patients:import"), {})

    assert response.status_code == 400
    assert "Patients CSV: This field is required." in response.text


def test_import_page_renders_for_managers(manager_client):
    response = manager_client.get(reverse("patients:import"))

    assert response.status_code == 200
    assert "external_id" in response.text
    assert 'enctype="multipart/form-data"' in response.text


# --- roles, login, methods -------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.USER, Role.USER_PLUS])
def test_bulk_tag_and_import_are_403_below_manager(member_client, role):
    client = member_client(role)
    patient = PatientFactory(practice=client.membership.practice, external_id="P1")
    upload = SimpleUploadedFile("patients.csv", b"external_id\nP2\n", "text/csv")

    assert client.get(reverse("patients:bulk_tag")).status_code == 403
    response = client.post(reverse("patients:bulk_tag"), {"name": "VIP", "external_ids": "P1"})
    assert response.status_code == 403
    assert client.get(reverse("patients:import")).status_code == 403
    assert client.post(reverse("patients:import"), {"file": upload}).status_code == 403
    assert patient.tags.count() == 0
    assert Patient.objects.count() == 1
    # …and the links to those pages are not offered to them.
    list_page = client.get(reverse("patients:list")).text
    assert reverse("patients:bulk_tag") not in list_page
    assert reverse("patients:import") not in list_page


def test_manager_sees_links_to_bulk_tag_and_import(manager_client):
    text = manager_client.get(reverse("patients:list")).text
    assert reverse("patients:bulk_tag") in text
    assert reverse("patients:import") in text


@pytest.mark.parametrize("role", [Role.USER, Role.USER_PLUS, Role.MANAGER, Role.ADMINISTRATOR])
def test_every_role_uses_the_list_and_detail(member_client, role):
    client = member_client(role)
    patient = PatientFactory(practice=client.membership.practice)

    assert client.get(reverse("patients:list")).status_code == 200
    assert client.get(reverse("patients:detail", args=[patient.pk])).status_code == 200
    Tag.objects.create(practice=patient.practice, name="VIP")  # every role uses a tag
    url = reverse("patients:tag_add", args=[patient.pk])
    assert client.post(url, {"name": "VIP"}).status_code == 302


def test_logged_out_is_sent_to_login(practice):
    patient = PatientFactory(practice=practice)
    tag = Tag.objects.create(practice=practice, name="VIP")
    client = Client()
    login = reverse("login")
    get_urls = [
        reverse("patients:list"),
        reverse("patients:detail", args=[patient.pk]),
        reverse("patients:bulk_tag"),
        reverse("patients:import"),
    ]
    post_urls = [
        reverse("patients:tag_add", args=[patient.pk]),
        reverse("patients:tag_remove", args=[patient.pk, tag.pk]),
        reverse("patients:opt_out", args=[patient.pk]),
        reverse("patients:bulk_tag"),
        reverse("patients:import"),
    ]
    for url in get_urls:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(f"{login}?next="), url
    for url in post_urls:
        response = client.post(url, {"name": "x", "channel": "sms", "opted_out": "true"})
        assert response.status_code == 302, url
        assert response["Location"].startswith(f"{login}?next="), url
    patient.refresh_from_db()
    assert not patient.sms_opt_out
    assert patient.tags.count() == 0


def test_post_only_endpoints_answer_405_to_get(user_client):
    patient = PatientFactory(practice=user_client.membership.practice)
    _tag(patient, "VIP")
    tag = Tag.objects.get(name="VIP")
    for url in [
        reverse("patients:tag_add", args=[patient.pk]),
        reverse("patients:tag_remove", args=[patient.pk, tag.pk]),
        reverse("patients:opt_out", args=[patient.pk]),
    ]:
        assert user_client.get(url).status_code == 405, url
    assert patient.tags.count() == 1
