"""Automatic logoff (HIPAA) and no caching of patient data (issue 13, item 20).

A session ends after ``SESSION_IDLE_TIMEOUT_SECONDS`` without a request (default 30 minutes)
and, however active, ``SESSION_MAX_AGE_SECONDS`` after signing in (default 12 hours). Every
response to a signed-in request, and every API response, carries ``Cache-Control: no-store``.
Time is moved with time-machine.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import time_machine
from django.test import Client, override_settings
from django.urls import reverse

from tests.factories import TEST_PASSWORD, MembershipFactory, PatientFactory
from trackstat.models import Role

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 5, 12, 8, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)
ROOT = Path(__file__).resolve().parents[2]


def signed_in(client: Client) -> bool:
    response = client.get(reverse("home"))
    if response.status_code == 302:
        assert response["Location"].startswith(reverse("login"))
        return False
    assert response.status_code == 200
    return True


@pytest.fixture
def member():
    return MembershipFactory(role=Role.USER)


@pytest.fixture
def traveller():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def test_defaults_are_thirty_minutes_idle_and_twelve_hours_in_all(settings):
    assert settings.SESSION_IDLE_TIMEOUT_SECONDS == 30 * 60
    assert settings.SESSION_MAX_AGE_SECONDS == 12 * 60 * 60
    assert settings.SESSION_COOKIE_AGE <= settings.SESSION_MAX_AGE_SECONDS


def test_thirty_minutes_without_a_request_signs_out(client, member, traveller):
    response = client.post(
        reverse("login"), {"username": member.user.email, "password": TEST_PASSWORD}
    )
    assert response.status_code == 302
    traveller.shift(29 * MINUTE)
    assert signed_in(client)  # and that request was activity
    traveller.shift(29 * MINUTE)
    assert signed_in(client)
    traveller.shift(31 * MINUTE)
    assert not signed_in(client)
    traveller.move_to(START)  # the session is gone, not just judged by the clock
    assert not signed_in(client)


def test_activity_keeps_a_session_only_up_to_its_absolute_lifetime(client, member, traveller):
    client.force_login(member.user)
    assert signed_in(client)
    for _ in range(12 * 3 - 1):  # every 20 minutes for almost 12 hours
        traveller.shift(20 * MINUTE)
        assert signed_in(client)
    traveller.shift(21 * MINUTE)  # 12 h 1 min after signing in, 21 minutes after the last
    assert not signed_in(client)


@override_settings(SESSION_IDLE_TIMEOUT_SECONDS=5 * 60, SESSION_MAX_AGE_SECONDS=60 * 60)
def test_the_limits_are_settings(client, member, traveller):
    client.force_login(member.user)
    assert signed_in(client)
    traveller.shift(4 * MINUTE)
    assert signed_in(client)
    traveller.shift(6 * MINUTE)
    assert not signed_in(client)

    client.force_login(member.user)
    assert signed_in(client)
    for _ in range(15):
        traveller.shift(4 * MINUTE)
        assert signed_in(client)
    traveller.shift(4 * MINUTE)  # 64 minutes in
    assert not signed_in(client)


def test_an_expired_htmx_request_sends_the_browser_to_sign_in(client, member, traveller):
    client.force_login(member.user)
    assert signed_in(client)
    traveller.shift(31 * MINUTE)

    response = client.get(reverse("patients:list"), headers={"HX-Request": "true"})

    assert response["HX-Redirect"] == reverse("login")
    assert response.content == b""
    assert not signed_in(client)


def test_an_expired_session_no_longer_reaches_the_api(client, member, traveller):
    client.force_login(member.user)
    assert client.get("/api/v1/practice").status_code == 200
    traveller.shift(31 * MINUTE)
    assert client.get("/api/v1/practice").status_code in (401, 403)


def test_an_api_key_request_starts_no_session(api):
    response = api.get("/api/v1/patients")
    assert response.status_code == 200
    assert "sessionid" not in response.cookies


def test_no_page_polls_so_nothing_keeps_an_idle_session_alive():
    """Every request counts as activity. A page that polled (htmx ``every``, a meta refresh)
    would keep an unattended screen signed in forever: it would have to be exempted first."""
    for template in (ROOT / "templates").rglob("*.html"):
        text = template.read_text()
        assert not re.search(r"hx-trigger=\"[^\"]*\bevery\b", text), template
        assert 'http-equiv="refresh"' not in text.lower(), template


# --- Cache-Control: no-store -----------------------------------------------------------------


def _no_store(response) -> bool:
    return "no-store" in response.get("Cache-Control", "")


def test_signed_in_pages_are_not_stored(member_client, practice):
    client = member_client(Role.MANAGER, practice)
    patient = PatientFactory(practice=practice)
    for url in [
        reverse("home"),
        reverse("patients:list") + "?q=Smith",
        reverse("patients:detail", args=[patient.pk]),
        reverse("messaging:patient_messages", args=[patient.pk]),
        reverse("campaigns:patient_why", args=[patient.pk]),
        reverse("messaging:inbox"),
        reverse("reports:index"),
    ]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert _no_store(response), url


def test_api_responses_are_not_stored(api, client):
    assert _no_store(api.get("/api/v1/patients"))
    assert _no_store(api.get("/api/v1/patients/nobody"))  # 404
    assert _no_store(client.get("/api/v1/patients"))  # 401/403 without credentials
