"""Pages show times in the practice's time zone: ``PracticeTimeZoneMiddleware`` activates it for
the request (Django's template and form machinery then convert), and the API keeps UTC."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from tests.factories import PracticeFactory
from trackstat.models import Role
from trackstat.services import api_key_create
from trackstat.tenancy import PracticeTimeZoneMiddleware

pytestmark = pytest.mark.django_db


def _zone_seen(path: str, practice) -> str:
    seen = {}

    def view(request):
        seen["zone"] = timezone.get_current_timezone_name()
        return HttpResponse()

    request = RequestFactory().get(path)
    request.practice = practice
    PracticeTimeZoneMiddleware(view)(request)
    return seen["zone"]


def test_a_page_request_runs_in_the_practice_time_zone_and_leaves_it_after():
    practice = PracticeFactory(time_zone="America/Chicago")

    assert _zone_seen("/campaigns/drip/", practice) == "America/Chicago"
    assert timezone.get_current_timezone_name() == "UTC"


def test_without_a_practice_and_on_the_api_the_default_zone_stays():
    practice = PracticeFactory(time_zone="America/Chicago")

    assert _zone_seen("/accounts/login/", None) == "UTC"
    # API instants keep their UTC form whoever asks (DRF renders in the active zone).
    assert _zone_seen("/api/v1/messages", practice) == "UTC"


def test_the_zone_is_left_even_when_the_view_fails():
    practice = PracticeFactory(time_zone="America/Chicago")

    def view(request):
        raise RuntimeError("boom")

    request = RequestFactory().get("/campaigns/drip/")
    request.practice = practice
    with pytest.raises(RuntimeError):
        PracticeTimeZoneMiddleware(view)(request)
    assert timezone.get_current_timezone_name() == "UTC"


def test_the_api_keys_page_shows_when_a_key_was_made_in_practice_time(member_client):
    client = member_client(Role.ADMINISTRATOR)
    practice = client.membership.practice  # America/New_York: 15:30 UTC is 10:30 in January
    with time_machine.travel(dt.datetime(2026, 1, 15, 15, 30, tzinfo=dt.UTC), tick=False):
        api_key_create(practice=practice, name="ChiroTouch")

    page = client.get(reverse("settings_api_keys")).text

    assert "2026-01-15 10:30" in page
    assert "2026-01-15 15:30" not in page
