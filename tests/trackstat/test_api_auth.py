"""API keys: ``Authorization: Api-Key <key>`` authenticates one practice only."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import PracticeFactory
from trackstat.models import ApiKey, Role
from trackstat.services import api_key_create, api_key_revoke

pytestmark = pytest.mark.django_db

URL = "/api/v1/practice"


def api_get(key: str | None, url: str = URL, **headers):
    if key is not None:
        headers["Authorization"] = f"Api-Key {key}"
    return Client().get(url, headers=headers)


def test_key_authenticates_its_own_practice():
    practice_a, practice_b = PracticeFactory(name="A"), PracticeFactory(name="B")
    key_a = api_key_create(practice=practice_a, name="EMR").secret
    key_b = api_key_create(practice=practice_b, name="EMR").secret
    assert api_get(key_a).json()["id"] == practice_a.pk
    assert api_get(key_b).json()["id"] == practice_b.pk


def test_key_decides_the_practice_even_with_a_session_of_another(member_client):
    client = member_client(Role.ADMINISTRATOR)
    other = PracticeFactory()
    key = api_key_create(practice=other, name="EMR").secret
    response = client.get(URL, headers={"Authorization": f"Api-Key {key}"})
    assert response.json()["id"] == other.pk


@pytest.mark.parametrize(
    "key",
    ["ts_00000000_wrong", "not-a-key", "ts_only-two", "", "ts_deadbeef_" + "x" * 43],
)
def test_wrong_key_is_401(key):
    api_key_create(practice=PracticeFactory(), name="EMR")
    response = api_get(key)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Api-Key"


def test_right_prefix_with_wrong_secret_is_401():
    issued = api_key_create(practice=PracticeFactory(), name="EMR")
    prefix = issued.secret.rsplit("_", 1)[0]
    assert api_get(prefix + "_" + "A" * 43).status_code == 401


def test_revoked_key_is_401():
    practice = PracticeFactory()
    issued = api_key_create(practice=practice, name="EMR")
    assert api_get(issued.secret).status_code == 200
    api_key_revoke(practice=practice, api_key_id=issued.api_key.pk, actor=None)
    assert api_get(issued.secret).status_code == 401


def test_no_credentials_is_401():
    assert api_get(None).status_code == 401


def test_malformed_header_is_401():
    response = Client().get(URL, headers={"Authorization": "Api-Key"})
    assert response.status_code == 401


def test_session_member_may_call_the_api(member_client):
    client = member_client(Role.USER)
    assert client.get(URL).json()["id"] == client.membership.practice_id


def test_key_is_stored_as_a_digest_and_records_use():
    issued = api_key_create(practice=PracticeFactory(), name="EMR")
    row = ApiKey.objects.get(pk=issued.api_key.pk)
    assert issued.secret.startswith(f"ts_{row.prefix}_")
    assert issued.secret not in (row.digest, row.prefix, row.name)
    assert row.last_used_at is None
    api_get(issued.secret)
    row.refresh_from_db()
    assert row.last_used_at is not None


def test_schema_is_served():
    response = Client().get(reverse("api_schema"))
    assert response.status_code == 200
    assert b"/api/v1/practice" in response.content


def test_api_docs_page_is_served_from_our_static_files():
    response = Client().get(reverse("api_docs"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui-bundle.js" in page
    assert "https://" not in page  # no CDN
    assert "<script>" not in page  # no inline script under the CSP
