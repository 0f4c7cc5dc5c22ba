"""Patient search finds the patient staff mean (issue 16, item 6): an exact email (never a
patient whose phone shares its digits), "Last, First" as the list writes it, "First Last", a
phone in any common format, an external id or its digits."""

from __future__ import annotations

import pytest
from django.urls import reverse

from patients.selectors import patient_list
from tests.factories import PatientFactory
from trackstat.models import Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(practice):
    grace = PatientFactory(
        practice=practice,
        external_id="DEMO-0107",
        first_name="Grace",
        last_name="Carter",
        phone="+13125550142",
        email="grace.carter1955@example.test",
    )
    # Her phone holds the digits of Grace's email ("1955"), her name nothing of Grace's.
    other = PatientFactory(
        practice=practice,
        external_id="DEMO-0200",
        first_name="Bob",
        last_name="Ray",
        phone="+17731955000",
        email="bob@example.test",
    )
    return grace, other


def found(practice, query) -> list[str]:
    return [p.external_id for p in patient_list(practice=practice, query=query)]


@pytest.mark.parametrize(
    "query",
    [
        "grace.carter1955@example.test",
        "GRACE.CARTER1955@EXAMPLE.TEST",
        "Carter, Grace",
        "carter, gr",
        "Grace Carter",
        "Carter Grace",
        "+1 (312) 555-0142",
        "(312) 555-0142",
        "312.555.0142",
        "312-555-0142",
        "3125550142",
        "+13125550142",
        "1 312 555 0142",
        "555-0142",
        "0107",
        "DEMO-0107",
        "demo-0107",
    ],
)
def test_search_finds_grace_and_only_her(practice, people, query):
    assert found(practice, query) == ["DEMO-0107"]


def test_an_email_never_matches_phone_digits(practice, people):
    assert found(practice, "grace.carter1955@example.test") == ["DEMO-0107"]
    assert found(practice, "nobody1955@example.test") == []


def test_another_practices_patient_is_not_found(practice, other_practice, people):
    assert found(other_practice, "Carter, Grace") == []


def test_the_list_page_searches_the_same_way(member_client, practice, people):
    client = member_client(Role.USER, practice=practice)
    page = client.get(reverse("patients:list"), {"q": "Carter, Grace"}).text
    assert "Carter, Grace" in page
    assert "Ray, Bob" not in page
