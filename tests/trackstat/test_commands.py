"""Management commands: create_practice and seed_demo (DESIGN §4.2)."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client, override_settings

from demo.management.commands.seed_demo import DEMO_LOGINS, OPERATOR_LOGIN
from trackstat.models import ApiKey, AuditEvent, Membership, Practice, Role
from trackstat.services import api_key_digest

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_practice_json_prints_id_and_a_working_api_key():
    out = run(
        "create_practice",
        "Main Street Chiropractic",
        "--timezone",
        "America/Chicago",
        "--sms-from",
        "(312) 555-0123",
        "--email-from",
        "front@mainstreet.test",
        "--json",
    )
    data = json.loads(out)
    assert set(data) == {"id", "api_key"}
    practice = Practice.objects.get(pk=data["id"])
    assert practice.name == "Main Street Chiropractic"
    assert practice.time_zone == "America/Chicago"
    assert practice.sms_from == "+13125550123"
    assert practice.email_from == "front@mainstreet.test"
    assert ApiKey.objects.get(practice=practice).digest == api_key_digest(data["api_key"])
    response = Client().get(
        "/api/v1/practice", headers={"Authorization": f"Api-Key {data['api_key']}"}
    )
    assert response.json()["id"] == practice.pk
    assert AuditEvent.objects.filter(practice=practice, action="practice.create").exists()


def test_create_practice_without_json_prints_the_key_once():
    out = run("create_practice", "Plain", "--timezone", "UTC")
    assert "API key (shown once): ts_" in out


def test_create_practice_gives_unique_slugs():
    first = json.loads(run("create_practice", "Same Name", "--timezone", "UTC", "--json"))
    second = json.loads(run("create_practice", "Same Name", "--timezone", "UTC", "--json"))
    slugs = {Practice.objects.get(pk=d["id"]).slug for d in (first, second)}
    assert slugs == {"same-name", "same-name-2"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timezone", "Nowhere/Else"], "--timezone"),
        (["--timezone", "UTC", "--sms-from", "12345"], "--sms-from"),
        (["--timezone", "UTC", "--email-from", "nope"], "--email-from"),
    ],
)
def test_create_practice_rejects_bad_options_and_stores_nothing(args, message):
    with pytest.raises(CommandError, match=message):
        run("create_practice", "Broken", *args)
    assert not Practice.objects.exists()
    assert not ApiKey.objects.exists()


def test_create_practice_requires_timezone():
    with pytest.raises(CommandError, match="--timezone"):
        run("create_practice", "No Zone")


@override_settings(DEBUG=True)
def test_seed_demo_creates_one_working_login_per_role_and_is_repeatable():
    out = run("seed_demo")
    run("seed_demo")  # a second run refreshes, never duplicates
    demo = Practice.objects.get(slug="demo")
    assert {m.role for m in Membership.objects.filter(practice=demo)} == set(Role.values)
    assert Membership.objects.filter(practice=demo).count() == len(DEMO_LOGINS)
    for email, password, role, _first, _last in DEMO_LOGINS:
        assert email in out
        assert password in out
        client = Client()
        response = client.post("/accounts/login/", {"username": email, "password": password})
        assert response.status_code == 302, email
        assert client.get("/").context["current_membership"].role == role
    operator = Client()
    assert operator.login(username=OPERATOR_LOGIN[0], password=OPERATOR_LOGIN[1])
    assert operator.get("/admin/trackstat/practice/").status_code == 200


@override_settings(DEBUG=False)
def test_seed_demo_refuses_in_production():
    with pytest.raises(CommandError, match="DEBUG is off"):
        run("seed_demo")
    assert not Practice.objects.exists()
