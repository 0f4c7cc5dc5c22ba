"""Noise and rough edges (issue 16, item 13): a page for a GET on a POST-only URL, our 404
page with DEBUG on, a favicon, refused requests logged without tracebacks, and new tags made
by Managers only."""

from __future__ import annotations

import logging

import pytest
from django.test import override_settings
from django.urls import reverse

from patients.models import Tag
from tests.factories import PatientFactory
from trackstat.log_filters import NoTracebackForClientErrorsFilter
from trackstat.models import Role

pytestmark = pytest.mark.django_db


def test_a_get_on_a_post_only_url_is_a_page(member_client):
    client = member_client(Role.ADMINISTRATOR)
    response = client.get(reverse("settings_api_key_revoke", args=[1]))
    assert response.status_code == 405
    assert "This address only answers a form" in response.text
    assert "<html" in response.text
    assert response["Allow"] == "POST"


def test_the_api_keeps_its_405(member_client):
    client = member_client(Role.ADMINISTRATOR)
    response = client.delete("/api/v1/practice")
    assert response.status_code == 405
    assert "Use the page" not in response.text


@override_settings(DEBUG=True)
def test_with_debug_on_a_404_is_our_page_not_djangos(member_client):
    client = member_client(Role.USER)
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert "There is nothing here in this practice." in response.text
    assert "Using the URLconf" not in response.text


def test_favicon_ico_answers(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("favicon.svg")


@pytest.mark.parametrize(("status", "kept"), [(403, False), (404, False), (500, True)])
def test_refused_requests_are_logged_without_a_traceback(status, kept):
    try:
        raise PermissionError("x")
    except PermissionError:
        import sys

        record = logging.LogRecord(
            "django.request", logging.WARNING, __file__, 1, "Forbidden: /x", (), sys.exc_info()
        )
    record.status_code = status
    assert NoTracebackForClientErrorsFilter().filter(record) is True
    assert (record.exc_info is not None) is kept


def test_the_console_handler_drops_client_error_tracebacks():
    from django.conf import settings

    assert "no_client_error_tracebacks" in settings.LOGGING["handlers"]["console"]["filters"]


def test_a_user_tags_with_existing_tags_only(member_client):
    user = member_client(Role.USER)
    patient = PatientFactory(practice=user.membership.practice)
    Tag.objects.create(practice=patient.practice, name="VIP")
    url = reverse("patients:tag_add", args=[patient.pk])

    response = user.post(url, {"name": "brand new"}, headers={"HX-Request": "true"})
    assert "There is no tag “brand new”" in response.text
    assert not Tag.objects.filter(name="brand new").exists()
    user.post(url, {"name": "vip"})
    assert list(patient.tags.values_list("name", flat=True)) == ["VIP"]

    manager = member_client(Role.MANAGER, practice=patient.practice)
    manager.post(url, {"name": "brand new"})
    assert Tag.objects.filter(practice=patient.practice, name="brand new").exists()


def test_a_real_403_reaches_the_console_log_as_one_line_without_a_traceback(member_client):
    import io

    console = next(
        handler
        for handler in logging.getLogger().handlers
        if "no_client_error_tracebacks" in getattr(handler, "name", "")
        or any(isinstance(f, NoTracebackForClientErrorsFilter) for f in handler.filters)
    )
    stream = io.StringIO()
    previous = console.setStream(stream)
    try:
        client = member_client(Role.USER)
        assert client.get(reverse("campaigns:drip_list")).status_code == 403
        assert client.get(reverse("settings_api_key_revoke", args=[1])).status_code == 405
    finally:
        console.setStream(previous)
    output = stream.getvalue()
    assert "Forbidden" in output
    assert "Traceback" not in output
    assert output.count("Forbidden (Permission denied)") + output.count("Forbidden:") == 1
