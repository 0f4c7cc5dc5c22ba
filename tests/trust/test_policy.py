"""The practice's messaging policy (DESIGN §5.8): read and merged through
``GET|PATCH /api/v1/practice`` and the Administrators' settings page, every change audited."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from trackstat.models import DEFAULT_MESSAGING_POLICY, AuditEvent, Role

pytestmark = pytest.mark.django_db


def test_defaults_then_patch_merges_the_keys_it_gives(api, practice):
    body = api.get("/api/v1/practice").json()
    assert body["messaging_policy"] == DEFAULT_MESSAGING_POLICY

    response = api.patch(
        "/api/v1/practice",
        {"messaging_policy": {"marketing_per_24h": 1, "sms_marketing_requires_opt_in": True}},
        content_type="application/json",
    )
    assert response.status_code == 200, response.json()
    response = api.patch(
        "/api/v1/practice",
        {"messaging_policy": {"marketing_per_7d": 3}},
        content_type="application/json",
    )
    policy = response.json()["messaging_policy"]
    assert policy == {
        **DEFAULT_MESSAGING_POLICY,
        "marketing_per_24h": 1,
        "marketing_per_7d": 3,
        "sms_marketing_requires_opt_in": True,
    }
    audits = AuditEvent.objects.filter(action="practice.messaging_policy_update").order_by("at")
    assert [a.after for a in audits] == [
        {"marketing_per_24h": 1, "sms_marketing_requires_opt_in": True},
        {"marketing_per_7d": 3},
    ]
    assert audits[0].before == {"marketing_per_24h": None, "sms_marketing_requires_opt_in": False}
    assert audits[0].actor_label.startswith("api-key:")


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"messaging_policy": {"marketing_per_24h": -1}}, "marketing_per_24h"),
        ({"messaging_policy": {"marketing_per_24h": "two"}}, "marketing_per_24h"),
        ({"messaging_policy": {"marketing_per_24h": True}}, "marketing_per_24h"),
        ({"messaging_policy": {"state_rules": "yes"}}, "state_rules"),
        ({"messaging_policy": {"texts_per_hour": 1}}, "texts_per_hour"),
    ],
)
def test_bad_policy_is_a_400_naming_the_field(api, patch, field):
    response = api.patch("/api/v1/practice", patch, content_type="application/json")
    assert response.status_code == 400
    assert field in response.json()["errors"]["messaging_policy"]
    assert not AuditEvent.objects.filter(action="practice.messaging_policy_update").exists()


def test_only_the_policy_is_patched_here(api):
    response = api.patch("/api/v1/practice", {"name": "X"}, content_type="application/json")
    assert response.status_code == 400
    assert "name" in response.json()["errors"]


def test_a_manager_session_may_read_but_not_patch(member_client):
    manager = member_client(Role.MANAGER)
    assert manager.get("/api/v1/practice").status_code == 200
    response = manager.patch(
        "/api/v1/practice",
        {"messaging_policy": {"marketing_per_24h": 1}},
        content_type="application/json",
    )
    assert response.status_code == 403
    assert Client().get("/api/v1/practice").status_code in (401, 403)


def test_administrators_set_the_policy_on_the_settings_page(member_client):
    admin = member_client(Role.ADMINISTRATOR)
    url = reverse("settings_policy")
    page = admin.get(url)
    assert page.status_code == 200
    assert "Follow state rules for marketing texts" in page.text
    response = admin.post(
        url,
        {"marketing_per_24h": "1", "marketing_per_7d": "", "state_rules": "on"},
    )
    assert response.status_code == 302
    practice = admin.membership.practice
    practice.refresh_from_db()
    assert practice.policy == {**DEFAULT_MESSAGING_POLICY, "marketing_per_24h": 1}
    audit = AuditEvent.objects.get(action="practice.messaging_policy_update")
    assert audit.actor == admin.membership.user

    response = admin.post(url, {"marketing_per_24h": "-3"})
    assert response.status_code == 400
    assert "Ensure this value is greater than or equal to 0" in response.text
    assert member_client(Role.MANAGER).get(url).status_code == 403
