"""Issue 16, item 9: the Patients forms that write (CSV import, bulk tagging) answer a
successful POST with a redirect, so a refresh of the page the browser lands on shows the
result again and applies nothing twice. The result belongs to the session that posted it,
in the practice it was posted in."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from patients.models import Patient, PatientTag
from tests.factories import MembershipFactory, PatientFactory
from trackstat.models import AuditEvent, Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager_client(member_client):
    return member_client(Role.MANAGER)


def _csv(text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile("patients.csv", text.encode(), "text/csv")


def test_import_redirects_and_a_refresh_shows_the_result_without_importing_again(
    manager_client,
):
    practice = manager_client.membership.practice
    upload = _csv("external_id,first_name,phone\nP1,Ann,312-555-0110\nP2,Bob,not-a-phone\n")

    response = manager_client.post(reverse("patients:import"), {"file": upload})

    assert response.status_code in (302, 303)
    target = response["Location"]
    assert target.startswith(reverse("patients:import") + "?result=")
    assert Patient.objects.filter(practice=practice).count() == 1
    audits = AuditEvent.objects.count()
    for _ in range(2):  # the redirected page, then a refresh of it
        page = manager_client.get(target)
        assert page.status_code == 200
        assert '<dd id="result-rows">2</dd>' in page.text
        assert '<dd id="result-created">1</dd>' in page.text
        assert "<tr><td>3</td><td><code>P2</code></td>" in page.text
    assert Patient.objects.filter(practice=practice).count() == 1
    assert AuditEvent.objects.count() == audits


def test_import_result_url_shows_nothing_to_another_session_or_practice(manager_client):
    practice = manager_client.membership.practice
    response = manager_client.post(reverse("patients:import"), {"file": _csv("external_id\nP1\n")})
    target = response["Location"]

    colleague = Client()
    colleague.force_login(MembershipFactory(practice=practice, role=Role.MANAGER).user)
    assert 'id="import-result"' not in colleague.get(target).text
    # A stale or made-up result id is a plain form, not an error.
    page = manager_client.get(reverse("patients:import") + "?result=nope")
    assert page.status_code == 200
    assert 'id="import-result"' not in page.text


def test_import_shows_only_the_latest_result_and_keeps_the_error_list_bounded(
    manager_client,
):
    from patients import views

    rows = "".join(f"E{n},{n}-{n}\n" for n in range(views.IMPORT_ERRORS_SHOWN + 5))
    response = manager_client.post(
        reverse("patients:import"), {"file": _csv(f"external_id,birth_date\n{rows}")}
    )
    page = manager_client.get(response["Location"]).text
    assert f'<dd id="result-errors">{views.IMPORT_ERRORS_SHOWN + 5}</dd>' in page
    assert page.count("<tr><td>") == views.IMPORT_ERRORS_SHOWN
    assert "…and 5 more errors, not shown here." in page


def test_bulk_tag_redirects_and_a_refresh_shows_the_result_without_tagging_again(
    manager_client,
):
    practice = manager_client.membership.practice
    patient = PatientFactory(practice=practice, external_id="P1")

    response = manager_client.post(
        reverse("patients:bulk_tag"), {"name": "VIP", "external_ids": "P1\nNOPE"}
    )

    assert response.status_code in (302, 303)
    target = response["Location"]
    assert target.startswith(reverse("patients:bulk_tag") + "?result=")
    for _ in range(2):
        page = manager_client.get(target)
        assert page.status_code == 200
        assert "Tag “VIP”" in page.text
        assert '<dd id="result-tagged">1</dd>' in page.text
        assert "<li><code>NOPE</code></li>" in page.text
    assert PatientTag.objects.filter(patient=patient).count() == 1


def test_bulk_tag_refused_input_stays_a_400_on_the_page(manager_client):
    response = manager_client.post(reverse("patients:bulk_tag"), {"name": "", "external_ids": "P1"})

    assert response.status_code == 400
    assert "Tag name: This field is required." in response.text
