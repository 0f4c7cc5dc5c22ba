"""Roles: who sees which menu items and who may open which pages (DESIGN §3)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from trackstat.models import Role

pytestmark = pytest.mark.django_db

CAMPAIGN_PAGES = ["campaigns:drip_list", "campaigns:blast_list", "campaigns:template_list"]
EVERY_ROLE_PAGES = [
    "home",
    "today",
    "messaging:message_list",
    "patients:list",
    "messaging:inbox",
    "reports:index",
]
ADMIN_PAGES = ["settings_users", "settings_practice", "settings_api_keys"]


def menu_labels(response) -> set[str]:
    context = response.context
    return {item["label"] for item in context["menu_communication"] + context["menu_main"]}


def test_user_gets_403_on_campaign_and_template_pages_and_does_not_see_them(member_client):
    client = member_client(Role.USER)
    for name in CAMPAIGN_PAGES:
        assert client.get(reverse(name)).status_code == 403, name
    home = client.get(reverse("home"))
    assert menu_labels(home) == {"Today", "Inbox", "Reports", "Sandbox", "Patients"}
    for label in ["Drip Campaigns", "Blast Campaigns", "Templates", "Settings"]:
        assert f">{label}</a>" not in home.text


@pytest.mark.parametrize("role", [Role.USER_PLUS, Role.MANAGER, Role.ADMINISTRATOR])
def test_user_plus_and_above_open_campaign_pages_and_see_them(member_client, role):
    client = member_client(role)
    for name in CAMPAIGN_PAGES:
        assert client.get(reverse(name)).status_code == 200, name
    labels = menu_labels(client.get(reverse("home")))
    assert {"Drip Campaigns", "Blast Campaigns", "Templates"} <= labels


@pytest.mark.parametrize("role", list(Role))
def test_every_role_opens_patients_inbox_and_reports(member_client, role):
    client = member_client(role)
    for name in EVERY_ROLE_PAGES:
        assert client.get(reverse(name)).status_code == 200, name


@pytest.mark.parametrize("role", [Role.USER, Role.USER_PLUS, Role.MANAGER])
def test_only_administrators_open_settings(member_client, role):
    client = member_client(role)
    for name in ADMIN_PAGES:
        assert client.get(reverse(name)).status_code == 403, name
        assert client.post(reverse(name), {}).status_code == 403, name
    assert "Settings" not in menu_labels(client.get(reverse("home")))


def test_administrator_opens_settings_and_sees_the_menu_item(member_client):
    client = member_client(Role.ADMINISTRATOR)
    for name in ADMIN_PAGES:
        assert client.get(reverse(name)).status_code == 200, name
    assert "Settings" in menu_labels(client.get(reverse("home")))


def test_logged_out_visitors_are_sent_to_login_from_every_page(client):
    for name in CAMPAIGN_PAGES + EVERY_ROLE_PAGES + ADMIN_PAGES:
        response = client.get(reverse(name))
        assert response.status_code == 302, name
        assert response["Location"].startswith(reverse("login")), name
