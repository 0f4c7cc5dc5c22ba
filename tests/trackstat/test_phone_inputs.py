"""Phone inputs take every common format (issue 16, item 7): nothing typed is cut at 16
characters, the profile and the practice settings store E.164, and the wizard's "add your
mobile phone" note links to the profile."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.trackstat.test_settings_pages import practice_form
from trackstat.models import Role

pytestmark = pytest.mark.django_db

FORMS_OF_ONE_NUMBER = [
    "+1 (312) 555-0142",
    "+1 312 555 0142",
    "1-312-555-0142",
    "(312) 555-0142",
    "312.555.0142",
    "312 555 0142",
    "3125550142",
    "+13125550142",
    "  (312)  555 - 0142 ",
]


@pytest.fixture
def admin_client(member_client):
    return member_client(Role.ADMINISTRATOR)


@pytest.mark.parametrize("typed", FORMS_OF_ONE_NUMBER)
def test_profile_takes_every_common_format(member_client, typed):
    client = member_client(Role.USER)
    response = client.post(reverse("profile"), {"first_name": "A", "last_name": "", "phone": typed})
    assert response.status_code == 302, response.content
    client.membership.user.refresh_from_db()
    assert client.membership.user.phone == "+13125550142"


@pytest.mark.parametrize("typed", FORMS_OF_ONE_NUMBER)
def test_practice_settings_take_every_common_format(admin_client, typed):
    practice = admin_client.membership.practice
    data = practice_form(practice, phone=typed, sms_from=typed)
    response = admin_client.post(reverse("settings_practice"), data)
    assert response.status_code == 302, response.content
    practice.refresh_from_db()
    assert (practice.phone, practice.sms_from) == ("+13125550142", "+13125550142")


def test_phone_inputs_are_not_cut_short(member_client, admin_client):
    profile = member_client(Role.USER).get(reverse("profile")).text
    settings_page = admin_client.get(reverse("settings_practice")).text
    for page in (profile, settings_page):
        assert 'maxlength="16"' not in page
        assert 'type="tel"' in page


def test_a_bad_number_names_the_field(member_client):
    client = member_client(Role.USER)
    response = client.post(reverse("profile"), {"first_name": "A", "last_name": "", "phone": "12"})
    assert response.status_code == 400
    assert "Enter a valid phone number." in response.text


def test_the_time_zone_is_a_searchable_list_us_zones_first(admin_client):
    page = admin_client.get(reverse("settings_practice")).text
    assert 'list="time-zones"' in page
    options = page[page.index('<datalist id="time-zones">') :]
    assert options.index("America/New_York") < options.index("Africa/Abidjan")
    assert options.index("Pacific/Honolulu") < options.index("Africa/Abidjan")
    assert "Europe/London" in options


def test_api_key_times_carry_the_practice_zone(admin_client):
    admin_client.post(reverse("settings_api_keys"), {"name": "EMR"})
    page = admin_client.get(reverse("settings_api_keys")).text
    assert " EST" in page or " EDT" in page  # the factories' practice is in New York
